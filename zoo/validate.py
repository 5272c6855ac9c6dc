"""Check a composed run config before any work starts.

Hydra already refuses a key the config does not have (``trainer.max_epoch=3``: "not in struct")
and a group option that does not exist (``experiment=lenet99``). What it cannot know is which
values make sense: ``data.batch_size=0`` or ``optimizer.lr=-1`` would otherwise end in a
traceback from inside torch's DataLoader or optimizer, and ``trainer.max_epochs=0`` would record
the test figures of an untrained net as a result. :func:`validate_train_config` checks the common
options' types and ranges, and that the net agrees with the data and with the published weights
it starts from; each fault is a :class:`ConfigError` that names the key, the value given and the
values allowed.

The rules are plain data (:data:`RULES`): a key, a check, and the words for what is allowed. A key
the config does not have is skipped (an optimizer without ``momentum``), so that one rule serves
every optimizer, trainer and datamodule config.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from omegaconf import DictConfig, ListConfig, OmegaConf

from zoo.errors import ConfigError

_MISSING = object()


# -- checks: value -> bool --------------------------------------------------------------------------
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def positive_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


def non_negative_int(v: Any) -> bool:
    return _is_int(v) and v >= 0


def positive_finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v) and v > 0


def non_negative_finite(v: Any) -> bool:
    return _is_number(v) and math.isfinite(v) and v >= 0


def unit_interval_open_right(v: Any) -> bool:
    return _is_number(v) and 0 <= v < 1


def unit_interval(v: Any) -> bool:
    return _is_number(v) and 0 <= v <= 1


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def check_or_none(v: Any) -> bool:
        return v is None or check(v)

    return check_or_none


def epochs(v: Any) -> bool:
    """Lightning's ``max_epochs``: a positive count, or -1 (no limit: ``max_steps`` ends the run)."""
    return _is_int(v) and (v >= 1 or v == -1)


def steps(v: Any) -> bool:
    return _is_int(v) and (v >= 1 or v == -1)


def batch_limit(v: Any) -> bool:
    """``limit_*_batches``: null, a count of batches, or a fraction of the loader in (0, 1]."""
    if v is None:
        return True
    if _is_int(v):
        return v >= 0
    return _is_number(v) and 0 <= v <= 1


def devices(v: Any) -> bool:
    if v == "auto" or v == -1:
        return True
    if _is_int(v):
        return v >= 1
    if isinstance(v, str):  # "2", "0,1" as Lightning parses them
        parts = [p for p in v.split(",") if p.strip()]
        return bool(parts) and all(p.strip().lstrip("-").isdigit() for p in parts) and v.strip() != "0"
    if isinstance(v, (list, tuple)):
        return bool(v) and all(non_negative_int(d) for d in v)
    return False


PRECISIONS = ("64", "64-true", "32", "32-true", "16", "16-mixed", "16-true", "bf16", "bf16-mixed",
              "bf16-true", "transformer-engine", "transformer-engine-float16")


def precision(v: Any) -> bool:
    return str(v) in PRECISIONS


# torch.compile's keyword arguments that a config can give (``compile={mode: max-autotune}``),
# and its modes (``torch._inductor.list_mode_options()``)
COMPILE_ARGUMENTS = ("fullgraph", "dynamic", "backend", "mode", "options", "disable")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_option(v: Any) -> bool:
    """The top-level ``compile``: null or false (eager), true (torch.compile's defaults) or a
    mapping of torch.compile's keyword arguments with values of their types (the backend's name
    is checked against torch's list in :func:`check_consistency`)."""
    if v is None or isinstance(v, bool):
        return True
    if not isinstance(v, dict) or not set(v) <= set(COMPILE_ARGUMENTS):
        return False
    kinds = {"fullgraph": bool, "disable": bool, "dynamic": (bool, type(None)), "backend": str,
             "mode": (str, type(None)), "options": (dict, type(None))}
    if not all(isinstance(value, kinds[key]) for key, value in v.items()):
        return False
    if v.get("mode") is not None and v["mode"] not in COMPILE_MODES:
        return False
    return not (v.get("mode") is not None and v.get("options") is not None)  # torch takes one of the two


def betas(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(unit_interval_open_right(b) for b in v)


def seed(v: Any) -> bool:
    return _is_int(v) and 0 <= v < 2**32


def clip_algorithm(v: Any) -> bool:
    return v in (None, "norm", "value")


# key, check, what is allowed (words for the message), advice (optional)
RULES: list[tuple[str, Callable[[Any], bool], str, str]] = [
    ("seed", seed, "an integer in 0 .. 2**32-1", ""),
    ("data.batch_size", positive_int, "a positive integer", ""),
    ("data.eval_batch_size", optional(positive_int), "null or a positive integer", ""),
    ("data.num_workers", non_negative_int, "an integer >= 0 (0 reads in the main process)", ""),
    ("data.val_fraction", unit_interval_open_right, "a fraction in [0, 1)", ""),
    ("data.test_fraction", unit_interval_open_right, "a fraction in [0, 1)", ""),
    ("data.image_size", optional(positive_int), "null or a positive integer (pixels)", ""),
    ("data.in_chans", optional(positive_int), "null or a positive integer (1 grey, 3 colour)", ""),
    ("data.num_classes", optional(positive_int), "null or a positive integer", ""),
    ("data.limit", optional(positive_int), "null or a positive integer (examples kept)", ""),
    ("model.num_classes", optional(positive_int), "a positive integer", ""),
    ("model.in_chans", optional(positive_int), "a positive integer (1 grey, 3 colour)", ""),
    ("task.num_classes", optional(positive_int), "null or a positive integer", ""),
    ("task.label_smoothing", unit_interval_open_right, "a fraction in [0, 1)", ""),
    ("optimizer.lr", positive_finite, "a finite number > 0",
     "e.g. optimizer.lr=0.001 (a learning rate is a step size: it cannot be zero or negative)"),
    ("optimizer.weight_decay", non_negative_finite, "a finite number >= 0", ""),
    ("optimizer.momentum", unit_interval, "a number in [0, 1]", ""),
    ("optimizer.betas", betas, "two numbers in [0, 1), e.g. [0.9, 0.999]", ""),
    ("optimizer.eps", positive_finite, "a finite number > 0", ""),
    ("trainer.max_epochs", epochs, "a positive integer (or -1 with trainer.max_steps)",
     "a run that trains for no epoch has no result to record"),
    ("trainer.max_steps", optional(steps), "a positive integer or -1 (no limit)", ""),
    ("trainer.min_epochs", optional(non_negative_int), "null or an integer >= 0", ""),
    ("trainer.devices", devices, "a positive integer, a list of device indices, -1 or 'auto'", ""),
    ("trainer.num_nodes", optional(positive_int), "a positive integer", ""),
    ("trainer.precision", precision, f"one of {', '.join(PRECISIONS)}", ""),
    ("trainer.limit_train_batches", batch_limit, "null, a number of batches >= 1 or a fraction in (0, 1]", ""),
    ("trainer.limit_val_batches", batch_limit, "null, a number of batches >= 0 or a fraction in [0, 1]", ""),
    ("trainer.limit_test_batches", batch_limit, "null, a number of batches >= 0 or a fraction in [0, 1]", ""),
    ("trainer.log_every_n_steps", optional(positive_int), "a positive integer", ""),
    ("trainer.check_val_every_n_epoch", optional(positive_int), "null or a positive integer", ""),
    ("trainer.num_sanity_val_steps", optional(lambda v: _is_int(v) and v >= -1), "an integer >= -1", ""),
    ("trainer.gradient_clip_val", optional(positive_finite), "null or a finite number > 0", ""),
    ("trainer.gradient_clip_algorithm", clip_algorithm, "'norm' or 'value'", ""),
    ("trainer.accumulate_grad_batches", optional(positive_int), "null or a positive integer", ""),
    ("compile", compile_option,
     "null or false (eager), true (torch.compile with its defaults) or a mapping of torch.compile's arguments "
     f"({', '.join(COMPILE_ARGUMENTS)}; mode one of {', '.join(COMPILE_MODES)}, not both mode and options)",
     "e.g. compile=true or compile={mode:max-autotune}"),
    ("lr_scaling", lambda v: v is None or v in ("linear", "sqrt"), "null, linear or sqrt",
     "linear multiplies optimizer.lr by the number of processes, sqrt by its square root"),
]


def _get(cfg: DictConfig, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return _MISSING
        try:
            node = node[part]
        except Exception:  # an interpolation that resolves only later (a data fact)
            return _MISSING
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _say(value: Any) -> str:
    return "null" if value is None else repr(value)


def check_rules(cfg: DictConfig, rules=RULES) -> None:
    """Raise :class:`ConfigError` for the first value that breaks a rule."""
    for key, check, allowed, advice in rules:
        value = _get(cfg, key)
        if value is _MISSING:
            continue
        if not check(value):
            raise ConfigError(f"{key}={_say(value)} is not allowed: {key} must be {allowed}"
                              + (f"; {advice}" if advice else ""))


def check_consistency(cfg: DictConfig) -> None:
    """The relations between options: the net agrees with the data and with the weights it
    starts from; there is something to train on and to choose by."""
    fast = bool(_get(cfg, "trainer.fast_dev_run") not in (_MISSING, None, False, 0))
    if _get(cfg, "trainer.limit_train_batches") == 0 and not fast:
        raise ConfigError("trainer.limit_train_batches=0 is not allowed: the run would train on no batch "
                          "and record an untrained net; give a number of batches >= 1 or a fraction in (0, 1]")
    if _get(cfg, "trainer.max_epochs") == -1 and _get(cfg, "trainer.max_steps") in (_MISSING, None, -1):
        raise ConfigError("trainer.max_epochs=-1 trains without an end: set trainer.max_steps to a positive "
                          "number of optimizer steps, or trainer.max_epochs to a positive number")
    val, test = _get(cfg, "data.val_fraction"), _get(cfg, "data.test_fraction")
    if _is_number(val) and _is_number(test) and val + test >= 1:
        raise ConfigError(f"data.val_fraction={val} and data.test_fraction={test} leave nothing to train on "
                          "(they must add up to less than 1)")
    _check_agreement(cfg, "num_classes", "classes")
    _check_agreement(cfg, "in_chans", "input channels")
    _check_pretrained(cfg)
    _check_compile_backend(cfg)


def _check_compile_backend(cfg: DictConfig) -> None:
    """``compile={backend: ...}`` names a backend torch knows (``torch._dynamo.list_backends``);
    torch itself would say so only at the first forward pass, inside the training loop."""
    option = _get(cfg, "compile")
    if not isinstance(option, dict) or "backend" not in option:
        return
    import torch._dynamo

    if option["backend"] not in torch._dynamo.list_backends(exclude_tags=()):  # debugging backends too
        raise ConfigError(f"compile.backend={option['backend']!r} is not allowed: compile.backend must be one of "
                          f"torch's backends ({', '.join(torch._dynamo.list_backends())}, or a debugging backend "
                          "such as eager or aot_eager); inductor is torch.compile's default")


def _check_agreement(cfg: DictConfig, key: str, what: str) -> None:
    """``model.<key>`` against ``data.<key>`` and ``task.<key>``, where both are known now
    (a value read from the data later, ``${data_fact:...}``, is checked by the data itself)."""
    model_value = _get(cfg, f"model.{key}")
    if not _is_int(model_value):
        return
    extra = _extra_classes(cfg) if key == "num_classes" else 0
    for other in ("data", "task"):
        value = _get(cfg, f"{other}.{key}")
        if other == "data" and _is_int(value):
            value += extra
        if _is_int(value) and value != model_value:
            plus = f" + {extra}" if other == "data" and extra else ""
            raise ConfigError(
                f"model.{key}={model_value} disagrees with {other}.{key}={value - (extra if plus else 0)}{plus}: "
                f"the net must have as many {what} as the {'data has' if other == 'data' else 'task scores'}"
                f"{' (and the task adds ' + str(extra) + ', e.g. background)' if plus else ''}; set "
                f"model.{key}={value} or {other}.{key}={model_value - (extra if plus else 0)} "
                f"(by default model.{key} follows data.{key})")


def _extra_classes(cfg: DictConfig) -> int:
    """Classes the task's net scores beyond the data's (``ZooTask.extra_classes``: a
    segmentation map's background)."""
    target = _get(cfg, "task._target_")
    if not isinstance(target, str):
        return 0
    try:
        from hydra.utils import get_class

        return int(getattr(get_class(target), "extra_classes", 0))
    except Exception:  # an unknown task is its own error, when it is built
        return 0


def _check_pretrained(cfg: DictConfig) -> None:
    """A net started from published weights reads the input those weights were trained on:
    another channel count would leave the first layer re-initialised, which is rarely what a
    user wants from a pretrained net, so it is refused with the fix."""
    tag, name = _get(cfg, "model.pretrained"), _get(cfg, "model.name")
    if not isinstance(tag, str) or not isinstance(name, str) or tag == "imagenet":
        return
    from zoo.weights import weights_for

    card = weights_for(name, tag)  # an unknown weight is its own clear error (WeightsError)
    trained = card.model_kwargs.get("in_chans")
    wanted = _get(cfg, "model.in_chans")
    if _is_int(trained) and _is_int(wanted) and trained != wanted:
        raise ConfigError(
            f"model.in_chans={wanted} disagrees with the weights {card.name}, trained on {trained}-channel "
            f"input: set data.in_chans={trained} (the datamodule converts the images) so that the "
            "pretrained first layer is used")


def validate_train_config(cfg: DictConfig) -> None:
    """Every check of a ``zoo-train`` config; raises :class:`ConfigError` naming the key."""
    check_rules(cfg)
    check_consistency(cfg)
