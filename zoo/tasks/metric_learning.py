"""Siamese networks: metric learning for verification and one-shot recognition.

One encoder ``f`` (the injected ``net``, weights shared by every input) maps an image to an
embedding; two images show the same identity when their embeddings are close. Three objectives
(``loss``), all in ``zoo.losses.metric_learning``:

* ``triplet`` -- FaceNet's triplet loss with margin ``alpha`` (default 0.2 on squared
  distances of unit vectors), triplets mined online in each P x K batch (``mining``:
  ``batch_hard``, ``semi_hard`` or ``batch_all``);
* ``contrastive`` -- Hadsell et al. 2006 over every pair of the batch (margin default 1.0, on
  Euclidean distances);
* ``head`` -- a second net, the verification head ``sigmoid(sum_k w_k |f(x_i)_k - f(x_j)_k| + b)``
  (Koch et al. 2015), trained with binary cross-entropy over every pair of the batch.

**Metrics** are computed on the classes the datamodule held out of training (identities never
seen), from all the embeddings of a stage at once (:class:`EmbeddingMetric`): a pair's score is
its head logit with ``loss=head``, else minus its squared distance.

* ``auroc`` -- ROC AUC of same/different pairs (torchmetrics ``binary_auroc``);
* ``eer`` -- equal error rate (torchmetrics ``binary_eer``);
* ``tar`` -- true accept rate at a false accept rate of at most ``far`` (torchmetrics
  ``binary_sensitivity_at_specificity``, specificity ``1 - far``);
* ``accuracy`` -- verification accuracy at the best threshold for these pairs (the figure papers
  quote for LFW as "accuracy"; LFW's protocol picks the threshold on nine folds, this one on the
  pairs themselves, an upper bound by a fraction of a percent at this size);
* ``one_shot`` -- N-way one-shot accuracy (``n_way``, 5 by default): in each episode, one
  support image of each of N classes and a query of one of them; right when the query scores
  highest with the support of its own class (Koch et al. 2015, section 4.2).

The pairs (``num_pairs`` same-identity pairs and as many different ones, the balance of LFW's
pairs) and the episodes are drawn by a ``torch.Generator`` seeded with ``metric_seed`` from the
labels, in the loader's order: every run and every epoch is scored on the same pairs.

**A verification threshold** on the Euclidean distance between embeddings, for face
verification and recognition (``zoo.faces``): after every validation epoch, the threshold that
classifies the validation pairs best is kept in the ``distance_threshold`` buffer, so it travels
in the checkpoint. A test run also reports ``test_accuracy_at_val_threshold``: the test pairs
classified with that threshold (the honest verification accuracy, threshold chosen elsewhere).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.functional.classification import binary_auroc, binary_eer, binary_sensitivity_at_specificity
from torchmetrics.utilities import dim_zero_cat

from zoo.losses.metric_learning import MINING, contrastive_loss, mined_triplet_loss, pair_bce_loss
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask

__all__ = ["MetricLearningTask", "EmbeddingMetric", "VerificationAUROC", "VerificationEER", "TrueAcceptRate",
           "VerificationAccuracy", "OneShotAccuracy", "verification_pairs", "one_shot_episodes",
           "best_threshold", "LOSSES"]

LOSSES = ("triplet", "contrastive", "head")
DEFAULT_MARGIN = {"triplet": 0.2, "contrastive": 1.0}

Scorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def negative_squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The default pair score: ``-||a - b||^2`` over the last dimension (higher: more alike)."""
    return -(a - b).pow(2).sum(-1)


# -- pairs and episodes, drawn from labels ---------------------------------------------------------

def _class_layout(labels: torch.Tensor):
    """``order`` (indices sorted by class, stable), and per example its class's ``start`` in
    ``order``, its class's ``count`` and its own ``rank`` within the class."""
    labels = labels.view(-1).cpu()
    order = torch.argsort(labels, stable=True)
    classes, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(labels)) - starts[inverse[order]]
    return order, classes, inverse, counts, starts, rank


def verification_pairs(labels: torch.Tensor, num_pairs: int, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``num_pairs`` same-label pairs and ``num_pairs`` different-label pairs of the examples
    ``0..N-1``, drawn uniformly with replacement by a generator seeded with ``seed``: the first
    of a same pair uniformly among examples whose class has another one, the second uniformly
    among the other examples of its class; the first of a different pair uniformly, the second
    uniformly among the other classes' examples. Returns ``(i, j, same)``, each (M,), on the CPU;
    a kind of pair that cannot be made (one class only; no class with two examples) is left out."""
    order, _, inverse, counts, starts, rank = _class_layout(labels)
    n = len(order)
    g = torch.Generator().manual_seed(int(seed))
    parts_i, parts_j, parts_same = [], [], []
    count = counts[inverse]  # (N,) each example's class size
    eligible = (count >= 2).nonzero().squeeze(1)
    if len(eligible) and num_pairs > 0:
        i = eligible[torch.randint(len(eligible), (num_pairs,), generator=g)]
        u = (torch.rand(num_pairs, generator=g, dtype=torch.float64) * (count[i] - 1)).long()
        u = torch.minimum(u, count[i] - 2)
        u = u + (u >= rank[i]).long()  # skip the anchor itself
        parts_i.append(i), parts_j.append(order[starts[inverse[i]] + u]), parts_same.append(torch.ones(num_pairs, dtype=torch.bool))
    others = (count < n).nonzero().squeeze(1)
    if len(others) and num_pairs > 0:
        i = others[torch.randint(len(others), (num_pairs,), generator=g)]
        rest = n - count[i]
        u = (torch.rand(num_pairs, generator=g, dtype=torch.float64) * rest).long()
        u = torch.minimum(u, rest - 1)
        start = starts[inverse[i]]
        pos = torch.where(u < start, u, u + count[i])  # jump over the anchor's class block
        parts_i.append(i), parts_j.append(order[pos]), parts_same.append(torch.zeros(num_pairs, dtype=torch.bool))
    if not parts_i:
        empty = torch.zeros(0, dtype=torch.long)
        return empty, empty, torch.zeros(0, dtype=torch.bool)
    return torch.cat(parts_i), torch.cat(parts_j), torch.cat(parts_same)


def one_shot_episodes(labels: torch.Tensor, n_way: int, episodes: int, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """``episodes`` N-way one-shot episodes over the examples ``0..N-1``, seeded: each draws
    ``n_way`` distinct classes among those with at least two examples, one support example of
    each, the query's class among them and a query of that class other than its support.
    Returns ``(support (E, n_way), query (E,), answer (E,))`` indices, ``answer`` the position of
    the query's class in ``support``; ``None`` when fewer than ``n_way`` classes have two examples."""
    order, classes, _, counts, starts, _ = _class_layout(labels)
    usable = (counts >= 2).nonzero().squeeze(1)  # class positions
    if len(usable) < n_way or episodes < 1:
        return None
    g = torch.Generator().manual_seed(int(seed))
    picked = usable[torch.rand(episodes, len(usable), generator=g).argsort(1)[:, :n_way]]  # (E, n_way)
    n_c, start = counts[picked], starts[picked]
    s_off = torch.minimum((torch.rand(episodes, n_way, generator=g, dtype=torch.float64) * n_c).long(), n_c - 1)
    support = order[start + s_off]  # (E, n_way)
    answer = torch.randint(n_way, (episodes,), generator=g)
    e = torch.arange(episodes)
    qn, qs = n_c[e, answer], s_off[e, answer]
    q_off = torch.minimum((torch.rand(episodes, generator=g, dtype=torch.float64) * (qn - 1)).long(), qn - 2)
    q_off = q_off + (q_off >= qs).long()  # never the support itself
    query = order[start[e, answer] + q_off]
    return support, query, answer


def best_threshold(scores: torch.Tensor, same: torch.Tensor) -> tuple[float, float]:
    """The accuracy of the best threshold on ``scores`` (accept a pair as same when its score is
    at least the threshold) and that threshold (midway between the two scores it separates).
    Ties are never split: a threshold falls only between distinct scores."""
    scores = scores.double().view(-1).cpu()
    same = same.bool().view(-1).cpu()
    n = len(scores)
    if n == 0:
        return float("nan"), float("nan")
    s, idx = torch.sort(scores, descending=True)
    y = same[idx].long()
    tp = torch.cumsum(y, 0)  # accepted same pairs when the top k+1 are accepted
    fp = torch.cumsum(1 - y, 0)
    neg = int((~same).sum())
    correct = tp + (neg - fp)  # (n,) right decisions accepting the top k+1
    boundary = torch.ones(n, dtype=torch.bool)
    boundary[:-1] = s[:-1] != s[1:]  # cut only between distinct scores
    best_k, best_correct = -1, neg  # accept nothing
    if boundary.any():
        cand = torch.where(boundary, correct, torch.full_like(correct, -1))
        k = int(torch.argmax(cand))
        if int(cand[k]) > best_correct:
            best_k, best_correct = k, int(cand[k])
    if best_k == -1:
        thr = float(s[0]) + 1.0
    elif best_k == n - 1:
        thr = float(s[-1]) - 1.0 if n else 0.0
    else:
        thr = 0.5 * (float(s[best_k]) + float(s[best_k + 1]))
    return best_correct / n, thr


def _as_probabilities(scores: torch.Tensor) -> torch.Tensor:
    """Scores mapped into [0, 1] by an increasing affine map, in float64: what torchmetrics'
    binary curves take as they are (a sigmoid would saturate large logits into ties)."""
    s = scores.double()
    lo, hi = s.min(), s.max()
    if hi <= lo:
        return torch.full_like(s, 0.5)
    return (s - lo) / (hi - lo)


# -- metrics over a stage's embeddings --------------------------------------------------------------

class EmbeddingMetric(Metric):
    """Keeps every embedding (B, D) and label (B,) of a stage; ``compute`` scores them together.
    Subclasses implement :meth:`from_embeddings`. ``scorer(a, b)`` scores pairs of (..., D)
    embeddings (higher: more alike), by default ``-||a - b||^2``."""

    full_state_update = False
    higher_is_better = True
    is_differentiable = False

    def __init__(self, scorer: Scorer | None = None, num_pairs: int = 3000, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.scorer = scorer or negative_squared_distance
        self.num_pairs, self.seed = int(num_pairs), int(seed)
        self.add_state("embeddings", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, embeddings: torch.Tensor, labels: torch.Tensor) -> None:
        if embeddings.dim() != 2 or labels.shape != (embeddings.shape[0],):
            raise ValueError(f"{type(self).__name__} takes embeddings (B, D) and labels (B,), got "
                             f"{tuple(embeddings.shape)} and {tuple(labels.shape)}")
        self.embeddings.append(embeddings.detach().float())
        self.labels.append(labels.detach().long())

    def compute(self) -> torch.Tensor:
        emb, labels = dim_zero_cat(self.embeddings), dim_zero_cat(self.labels)
        with torch.no_grad():
            value = self.from_embeddings(emb, labels)
        return torch.as_tensor(value, dtype=torch.float32, device=emb.device)

    def pair_scores(self, emb: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        i, j, same = verification_pairs(labels, self.num_pairs, self.seed)
        if len(i) == 0 or bool(same.all()) or not bool(same.any()):
            return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
        i, j = i.to(emb.device), j.to(emb.device)
        return self.scorer(emb[i], emb[j]).detach().float().cpu(), same

    def from_embeddings(self, emb: torch.Tensor, labels: torch.Tensor) -> float | torch.Tensor:
        raise NotImplementedError


class VerificationAUROC(EmbeddingMetric):
    """ROC AUC of the same/different pairs (torchmetrics ``binary_auroc``)."""

    def from_embeddings(self, emb, labels):
        scores, same = self.pair_scores(emb, labels)
        if len(scores) == 0:
            return float("nan")
        return binary_auroc(_as_probabilities(scores), same.long())


class VerificationEER(EmbeddingMetric):
    """Equal error rate: where the false accept and false reject rates meet (torchmetrics ``binary_eer``)."""

    higher_is_better = False

    def from_embeddings(self, emb, labels):
        scores, same = self.pair_scores(emb, labels)
        if len(scores) == 0:
            return float("nan")
        return binary_eer(_as_probabilities(scores), same.long())


class TrueAcceptRate(EmbeddingMetric):
    """True accept rate at a false accept rate of at most ``far`` (torchmetrics
    ``binary_sensitivity_at_specificity`` with ``min_specificity = 1 - far``)."""

    def __init__(self, far: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < far < 1.0:
            raise ValueError(f"far must be in (0, 1), got {far}")
        self.far = float(far)

    def from_embeddings(self, emb, labels):
        scores, same = self.pair_scores(emb, labels)
        if len(scores) == 0:
            return float("nan")
        tar, _ = binary_sensitivity_at_specificity(_as_probabilities(scores), same.long(),
                                                   min_specificity=1.0 - self.far)
        return tar


class VerificationAccuracy(EmbeddingMetric):
    """Verification accuracy at the best threshold on these pairs (:func:`best_threshold`)."""

    def from_embeddings(self, emb, labels):
        scores, same = self.pair_scores(emb, labels)
        return best_threshold(scores, same)[0] if len(scores) else float("nan")


class OneShotAccuracy(EmbeddingMetric):
    """N-way one-shot accuracy over ``episodes`` seeded episodes (:func:`one_shot_episodes`)."""

    def __init__(self, n_way: int = 5, episodes: int = 1000, **kwargs):
        super().__init__(**kwargs)
        if int(n_way) < 2 or int(episodes) < 1:
            raise ValueError(f"n_way must be >= 2 and episodes >= 1, got n_way={n_way}, episodes={episodes}")
        self.n_way, self.episodes = int(n_way), int(episodes)

    def from_embeddings(self, emb, labels):
        drawn = one_shot_episodes(labels, self.n_way, self.episodes, self.seed)
        if drawn is None:
            return float("nan")
        support, query, answer = (t.to(emb.device) for t in drawn)
        scores = self.scorer(emb[query].unsqueeze(1), emb[support])  # (E, 1, D) x (E, N, D) -> (E, N)
        return float((scores.argmax(1) == answer).double().mean())


# -- the task --------------------------------------------------------------------------------------

class MetricLearningTask(ZooTask):
    """Trains an encoder of L2-normalised embeddings (and, with ``loss=head``, a verification head).

    Args:
        net: the encoder (injected): (B, C, H, W) -> (B, D) embeddings.
        head: the verification head (a second net, ``verification_head``): two (..., D)
            embeddings -> (...,) logits. Required by ``loss=head``, refused by the others.
        loss: ``triplet``, ``contrastive`` or ``head`` (see the module docstring).
        mining: the triplet loss's online mining, ``batch_hard``, ``semi_hard`` or ``batch_all``.
        margin: the triplet loss's alpha (default 0.2) or the contrastive loss's m (default 1.0).
        num_pairs: same-identity pairs (and as many different ones) the verification metrics use.
        n_way, episodes: the one-shot metric's ways and number of episodes.
        far: the false accept rate at which ``tar`` is read.
        metric_seed: seeds the pairs and episodes.
        distance_threshold: a verification threshold to start from (a published weight's validated
            one); by default none until the first validation epoch chooses it.
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``).
    """

    family = "Siamese networks"
    batch_contract = ("(images, labels): images float32 (B, C, H, W), labels int64 (B,) identity ids; a training "
                      "batch holds P identities x K images (the datamodule's P x K sampler), so that every anchor "
                      "has positives and negatives")
    nets = ("net", "head")
    primary_metric = "auroc"
    higher_is_better = True
    exact_metrics = ("accuracy", "one_shot")
    data_facts_used = ("distance_threshold",)  # a published weight's card holds its validated threshold
    test_pictures = ()

    def __init__(self, net: nn.Module, head: nn.Module | None = None, loss: str = "triplet",
                 mining: str = "batch_hard", margin: float | None = None, num_pairs: int = 3000,
                 n_way: int = 5, episodes: int = 1000, far: float = 0.01, metric_seed: int = 0,
                 optimizer: OptimizerFactory | None = None, scheduler: SchedulerFactory | None = None,
                 scheduler_interval: str = "epoch", gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", accumulate_grad_batches: int = 1,
                 distance_threshold: float | None = None):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if loss not in LOSSES:
            raise ValueError(f"task.loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if mining not in MINING:
            raise ValueError(f"task.mining must be one of {', '.join(MINING)}, got {mining!r}")
        if loss == "head" and head is None:
            raise ValueError("task.loss=head trains a verification head: give task.head (e.g. {_target_: "
                             "zoo.registry.create_model, name: verification_head, embedding_dim: "
                             "${model.embedding_dim}}), or choose task.loss=triplet or contrastive")
        if loss != "head" and head is not None:
            raise ValueError(f"task.head is given but task.loss={loss} does not train it: set task.loss=head, "
                             "or drop task.head")
        if margin is not None and not (isinstance(margin, (int, float)) and margin > 0):
            raise ValueError(f"task.margin must be a positive number (or null for the loss's default), got {margin!r}")
        if int(num_pairs) < 1 or int(n_way) < 2 or int(episodes) < 1:
            raise ValueError(f"task.num_pairs and task.episodes must be >= 1 and task.n_way >= 2, got "
                             f"num_pairs={num_pairs}, n_way={n_way}, episodes={episodes}")
        if not 0.0 < far < 1.0:
            raise ValueError(f"task.far must be in (0, 1), got {far}")
        if distance_threshold is not None and not (isinstance(distance_threshold, (int, float))
                                                   and math.isfinite(distance_threshold) and distance_threshold >= 0):
            raise ValueError(f"task.distance_threshold must be a distance >= 0 (or null), got {distance_threshold!r}")
        self.head = head
        self.loss_name, self.mining = loss, mining
        self.margin = float(margin) if margin is not None else DEFAULT_MARGIN.get(loss)
        self.num_pairs, self.n_way, self.episodes = int(num_pairs), int(n_way), int(episodes)
        self.far, self.metric_seed = float(far), int(metric_seed)
        # the Euclidean distance under which two embeddings are called the same identity,
        # chosen on the validation pairs after every validation epoch (NaN until then)
        # (or the validated one a published weight's card carries: ``distance_threshold``)
        self.register_buffer("distance_threshold", torch.tensor(
            float("nan") if distance_threshold is None else float(distance_threshold)))
        self._kept: dict[str, list] = {"val": [], "test": []}
        self._test_figures: dict = {}
        self.save_hyperparameters(ignore=["net", "head", "optimizer", "scheduler"])
        self.init_metrics()

    def published_facts(self) -> dict:
        """The validated verification threshold, so that a published weight verifies and
        identifies (``zoo-face``) as its run did; nothing before any validation."""
        thr = float(self.distance_threshold)
        return {"distance_threshold": thr} if math.isfinite(thr) else {}

    def net_specs(self) -> dict:
        specs = super().net_specs()
        if self.head is None:
            specs.pop("head")
        return specs

    # -- scoring ------------------------------------------------------------------------------------
    def pair_scores(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """The score of pairs of (..., D) embeddings, higher for more alike: the head's logit
        with ``loss=head``, else ``-||a - b||^2``."""
        if self.head is not None:
            return self.head(a, b)
        return negative_squared_distance(a, b)

    def build_metrics(self, prefix: str) -> MetricCollection:
        common = {"scorer": self.pair_scores, "num_pairs": self.num_pairs, "seed": self.metric_seed}
        if prefix == "train/":  # training batches: one cheap figure to watch
            return MetricCollection({"auroc": VerificationAUROC(**common)}, prefix=prefix)
        return MetricCollection({
            "auroc": VerificationAUROC(**common),
            "accuracy": VerificationAccuracy(**common),
            "eer": VerificationEER(**common),
            "tar": TrueAcceptRate(far=self.far, **common),
            "one_shot": OneShotAccuracy(n_way=self.n_way, episodes=self.episodes, **common),
        }, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/auroc", "test ROC AUC", 1.0), ("test/one_shot", "test 5-way one-shot (%)", 100.0),
                ("test/accuracy", "test verification acc. (%)", 100.0), ("test/eer", "test EER (%)", 100.0),
                ("test/tar", "test TAR@FAR=1% (%)", 100.0)]

    # -- the step -----------------------------------------------------------------------------------
    def shared_step(self, batch, stage: str):
        images, labels = batch
        emb = self.net(images)
        if emb.dim() != 2:
            raise ValueError(f"the encoder outputs {tuple(emb.shape)}; a metric-learning net must output "
                             "embeddings (B, D)")
        labels = labels.to(emb.device).long()
        if self.loss_name == "triplet":
            loss = mined_triplet_loss(emb, labels, self.margin, self.mining)
        elif self.loss_name == "contrastive":
            loss = contrastive_loss(emb, labels, self.margin)
        else:
            i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=emb.device)
            loss = pair_bce_loss(self.head(emb[i], emb[j]), labels[i] == labels[j])
        return loss, emb, labels

    # -- the verification threshold, from the validation pairs -------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._kept["val"] = []

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._kept["test"] = []
        self._test_figures = {}

    def on_metrics_flushed(self, stage: str, preds, target) -> None:
        if stage in self._kept:
            self._kept[stage].append((preds.detach().float().cpu(), target.detach().cpu()))

    def _distances(self, stage: str):
        kept = self._kept.get(stage) or []
        if not kept:
            return None
        emb = torch.cat([e for e, _ in kept])
        labels = torch.cat([t for _, t in kept])
        i, j, same = verification_pairs(labels, self.num_pairs, self.metric_seed)
        if len(i) == 0 or bool(same.all()) or not bool(same.any()):
            return None
        return (emb[i] - emb[j]).pow(2).sum(-1).sqrt(), same

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        found = self._distances("val")
        if found is not None:
            dist, same = found
            _, thr = best_threshold(-dist, same)  # accept when -d >= -t, i.e. d <= t
            self.distance_threshold.fill_(max(-thr, 0.0))

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        found = self._distances("test")
        if found is None:
            return
        dist, same = found
        thr = float(self.distance_threshold)
        if not math.isnan(thr):
            self._test_figures["test_distance_threshold"] = round(thr, 6)
            self._test_figures["test_accuracy_at_val_threshold"] = round(float(((dist <= thr) == same).double().mean()), 6)
        # distances of same and different test pairs, in 40 bins (the report's histogram)
        hi = max(float(dist.max()), 1e-6)
        edges = torch.linspace(0.0, hi, 41)
        self._test_figures["test_distance_histogram"] = {
            "edges": [round(float(e), 5) for e in edges],
            "same": torch.histc(dist[same], bins=40, min=0.0, max=hi).long().tolist(),
            "different": torch.histc(dist[~same], bins=40, min=0.0, max=hi).long().tolist()}

    def test_outputs(self) -> dict:
        return dict(self._test_figures)

    @classmethod
    def draw_outputs(cls, record: dict, folder: Path, data_facts: dict) -> list[str]:
        hist = record.get("test_distance_histogram")
        if not hist:
            return []
        from zoo.reporting import plots

        fig, ax = plots.plt.subplots(figsize=(5, 3.4))
        edges = hist["edges"]
        for key, colour in (("same", "tab:green"), ("different", "tab:red")):
            ax.stairs(hist[key], edges, fill=True, alpha=0.5, color=colour, label=f"{key} identity")
        thr = record.get("test_distance_threshold")
        if thr is not None:
            ax.axvline(thr, color="black", linestyle="--", label=f"threshold {thr:.3f} (val)")
        ax.set_xlabel("Euclidean distance between embeddings")
        ax.set_ylabel("test pairs")
        ax.legend(fontsize=8)
        ax.set_title(f"{record.get('experiment', '')}: test pair distances")
        plots.save(fig, folder / "pair_distances.png")
        return ["pair_distances.png"]

    # -- predictions --------------------------------------------------------------------------------
    def predict_step(self, batch, batch_idx: int = 0):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.net(x)

    def describe_prediction(self, output: torch.Tensor, top: int = 5) -> dict:
        return {"embedding": [round(float(v), 6) for v in output.tolist()],
                "norm": round(float(output.norm()), 6)}
