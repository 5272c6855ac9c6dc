"""What a recorded figure promises, on the machine that recorded it and on another one.

**The same machine** (same CPU model, torch thread count, GPU and library versions): training,
evaluation and ``zoo-bench --verify`` reproduce every figure bit for bit. The kernels torch
picks, and the order in which they add floating-point numbers, are then the same.

**Another machine**: a CPU with other vector units (AVX-512, AVX2, or none:
``ATEN_CPU_CAPABILITY=default``), another blocking or another thread count adds the same
numbers in another order, and a float32 sum can change in its last bits. So:

* evaluating the same weights on the same data gives the same predictions, hence *identical*
  figures that are ratios of integer counts (accuracy, F1 from true/false positive counts,
  confusion matrices) -- these are compared exactly;
* a figure that is itself a floating-point sum (a loss, a mean probability, a time) agrees within
  :data:`FLOAT_SUM`, stated below with its reason;
* training again is a long chain of such sums: the last-bit differences grow along the
  trajectory, and a re-trained run lands within the spread of the recorded seeds, not on the
  recorded figure (``zoo-bench --verify`` says which machine recorded each run).

A task names its count-based metrics in ``exact_metrics`` (e.g. ``("acc", "f1")`` for
classification), its mean average precisions in ``ap_metrics`` (compared within
:data:`AP_MATCH`) and the error rates of sequences decoded frame by frame in ``decoded_metrics``
(compared within :data:`DECODE_MATCH`); every other metric is compared within :data:`FLOAT_SUM`.
:func:`tolerances_of` turns a task's lists into one mapping from metric name to tolerance, which
is what :func:`compare_metrics` and :func:`promises` take.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping


@dataclass(frozen=True)
class Tolerance:
    rel: float
    abs: float
    reason: str

    def holds(self, found: float, recorded: float) -> bool:
        if self.rel == 0 and self.abs == 0:
            return found == recorded
        return math.isclose(found, recorded, rel_tol=self.rel, abs_tol=self.abs)

    def describe(self) -> str:
        return "exact" if self.rel == 0 and self.abs == 0 else f"within rel {self.rel:g} / abs {self.abs:g}"


EXACT = Tolerance(0.0, 0.0, "a ratio of integer counts: the same predictions give the same float32 "
                            "division on any machine")

# Measured: evaluating the 19 published weights with AVX2 kernels, with torch's non-vectorized
# kernels (ATEN_CPU_CAPABILITY=default) and with one thread (OMP_NUM_THREADS=1) changed no
# prediction, and changed the test loss by at most 4.2e-7 relative (7 float32 ulps, on a 500-image
# mean). 1e-5 leaves a 24-fold margin for CPUs that block their sums differently again, and is
# still far below what a real change makes: one of 500 images whose loss moves by 0.01 moves the
# mean by 2e-5 absolute (about 4e-5 relative at a typical loss of 0.5).
FLOAT_SUM = Tolerance(1e-5, 1e-7, "a floating-point sum: another CPU or thread count adds in another "
                                  "order (measured: at most 4.2e-7 relative over the published weights)")


# Measured: yolo_tiny.digit_canvas, recorded on a 2-core Intel Xeon and evaluated on a 2-core AMD
# EPYC, gave test/map 0.5943765 against 0.5943856 (9.1e-6 apart) with identical map50 and loss.
# Mean average precision matches each box at ten IoU thresholds (0.50:0.05:0.95): a box whose IoU
# with its truth lies within float error of a threshold is matched on one CPU and not on another,
# and reorders or moves one point of a precision-recall curve. 1e-4 absolute leaves an 11-fold
# margin and still fails on a real change (one box more or less of a class moves its AP by ~1e-2).
AP_MATCH = Tolerance(0.0, 1e-4, "mean average precision: a box whose IoU lies within float error of one "
                                "of the IoU thresholds is matched on one CPU and not on another "
                                "(measured: 9.1e-6 between two CPUs)")


# Measured: ctc_conv_bigru.synth_digits, recorded on a 2-core AMD EPYC and evaluated on a 2-core
# Intel Xeon (2 threads, 1 thread, and ATEN_CPU_CAPABILITY=default alike), gave test CER
# 0.0386321 against 0.0385336: one character edit of the 10,147 reference characters (9.9e-5),
# with WER identical and the loss 1.8e-7 apart. The greedy CTC decode takes an argmax at each of
# the 60,830 test frames; a frame whose two best log-probabilities lie within the float error of
# another CPU's sums picks the other class there. Of those frames 3 lie within 1e-4 and 5 within
# 1e-3 of a tie. A flipped frame costs at most two character edits and one word: all five flipped
# would move CER by 9.9e-4 and WER by 5/2,104 = 2.4e-3. 2.5e-3 absolute covers that; the loss,
# compared within FLOAT_SUM, stays the sharp check on the weights and the data.
DECODE_MATCH = Tolerance(0.0, 2.5e-3, "an error rate of sequences decoded by an argmax at every frame: a frame whose "
                                      "two best scores lie within float error of a tie is decoded otherwise on "
                                      "another CPU (measured: one character edit in 10,147, CER 9.9e-5, between two "
                                      "CPUs)")


# The kinds of metric a task may name, each with the tolerance it gets: a task lists its metrics
# of a kind in the class attribute of that name (``exact_metrics = ("acc", "f1")``). A new kind is
# a new entry here and a new attribute on ``zoo.tasks.base.ZooTask``.
TOLERANCE_KINDS: dict[str, Tolerance] = {
    "exact_metrics": EXACT,
    "ap_metrics": AP_MATCH,
    "decoded_metrics": DECODE_MATCH,
}


def tolerances_of(task: object) -> dict[str, Tolerance]:
    """The tolerance of each metric a task (class or instance) names in its kinds'
    attributes (:data:`TOLERANCE_KINDS`), keyed by the metric's name (``acc``, ``map50``). A
    metric it names in two kinds is a contradiction in the task, refused with both kinds named."""
    out: dict[str, Tolerance] = {}
    kind_of: dict[str, str] = {}
    for kind, tolerance in TOLERANCE_KINDS.items():
        for name in getattr(task, kind, ()) or ():
            if name in kind_of and kind_of[name] != kind:
                owner = getattr(task, "__name__", type(task).__name__)
                raise ValueError(f"{owner} names the metric {name!r} in both {kind_of[name]} and {kind}: "
                                 "a metric has one tolerance, so name it in one of them")
            kind_of[name], out[name] = kind, tolerance
    return out


def metric_tolerance(key: str, tolerances: Mapping[str, Tolerance] | None = None) -> Tolerance:
    """The tolerance of ``stage/name`` (``test/acc``): the one the task gives the name
    (:func:`tolerances_of`: exact for its count-based metrics, :data:`AP_MATCH` for its mean
    average precisions, :data:`DECODE_MATCH` for the error rates of its frame-by-frame decodes),
    else :data:`FLOAT_SUM`."""
    return (tolerances or {}).get(key.rsplit("/", 1)[-1], FLOAT_SUM)


@dataclass(frozen=True)
class MetricCheck:
    key: str
    found: float | None
    recorded: float
    tolerance: Tolerance

    @property
    def ok(self) -> bool:
        return self.found is not None and self.tolerance.holds(self.found, self.recorded)

    def line(self) -> str:
        if self.found is None:
            return f"{self.key}: missing (recorded {self.recorded!r})"
        verdict = "ok" if self.ok else "DIFFERS"
        delta = "" if self.found == self.recorded else f", |diff| {abs(self.found - self.recorded):.2g}"
        return (f"{self.key}: {self.found!r} against recorded {self.recorded!r} "
                f"({self.tolerance.describe()}{delta}: {verdict})")


def compare_metrics(found: Mapping[str, float], recorded: Mapping[str, float],
                    tolerances: Mapping[str, Tolerance] | None = None) -> list[MetricCheck]:
    """Check every recorded metric against the one found, each with its tolerance
    (``tolerances``: metric name to tolerance, as :func:`tolerances_of` gives a task's)."""
    return [MetricCheck(k, None if found.get(k) is None else float(found[k]), float(v),
                        metric_tolerance(k, tolerances)) for k, v in recorded.items()]


def promises(keys: Iterable[str], tolerances: Mapping[str, Tolerance] | None = None) -> dict[str, str]:
    """For a weight card: what each metric promises on another machine, and why."""
    out = {}
    for k in keys:
        tol = metric_tolerance(k, tolerances)
        out[k] = f"{tol.describe()}: {tol.reason}"
    return out


def machine_key(hardware: Mapping, versions: Mapping) -> tuple:
    """What must match for bit-identical figures: CPU model, torch threads, GPU, torch version."""
    return (hardware.get("cpu"), hardware.get("torch_threads"), hardware.get("gpu"), versions.get("torch"))


def same_machine(record: Mapping, other: Mapping | None = None) -> bool:
    """Were the runs ``record`` and ``other`` (two ``metrics.json``) made on machines alike in
    all that decides the sums' order? Without ``other``: ``record`` against this process."""
    if other is None:
        from zoo.runinfo import hardware, library_versions

        other = {"hardware": hardware(), "versions": library_versions()}
    return machine_key(record.get("hardware", {}), record.get("versions", {})) == \
        machine_key(other.get("hardware", {}), other.get("versions", {}))
