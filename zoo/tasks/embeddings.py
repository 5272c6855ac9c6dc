"""Word embeddings trained on a corpus (course 5 of the notes, "NLP and word embeddings"): one
task per objective, the net injected.

* :class:`SkipGramTask`: word2vec's skip-gram with negative sampling (Mikolov et al. 2013), loss
  ``-log s(u_o . v_c) - sum_k log s(-u_k . v_c)`` per (centre, context) pair;
* :class:`GloVeTask`: GloVe's weighted least squares on log co-occurrence counts (Pennington et
  al. 2014), ``f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2``.

Both are judged on the word vectors (``net.vectors()``, (V, D)), never on held-out text: at every
validation and test epoch the task scores them on WordSim-353 and SimLex-999 (Spearman's rank
correlation of cosine similarities with the human scores, torchmetrics' ``SpearmanCorrCoef``)
and on the Google analogy questions (3CosAdd accuracy), each over the questions whose words are
all in the vocabulary, and logs how many those are (``*_covered``). The validation and test
loaders give one fixed probe batch of the corpus (``datamodules.text.embeddings``); its loss is
logged as ``val/loss`` / ``test/loss`` (a fit figure). The sets are gensim's copies
(``zoo.text_eval``); the vocabulary is a data fact (``vocab``), kept in the checkpoint, so that
``zoo-embed`` can query a trained checkpoint on its own.

``loss_reduction="sum"`` (the default) adds the per-example losses of a batch, so that plain SGD
with word2vec's learning rate (0.025, decayed linearly) makes the per-pair updates of the
original code, summed over the batch; "mean" divides by the batch size (for Adam and friends).
"""
from __future__ import annotations

import inspect
import math
from functools import partial
from typing import Any, Sequence

import torch
import torch.nn as nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.regression import SpearmanCorrCoef

from zoo.losses.embeddings import glove_loss, sgns_loss
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask
from zoo.tasks.metrics import CountRatio
from zoo.text_eval import (analogy_correct, gensim_eval_file, pair_similarities, read_analogies,
                           read_word_pairs)

__all__ = ["EmbeddingTask", "SkipGramTask", "GloVeTask", "SetSpearman", "AnalogyAccuracy", "Covered"]

EVAL_KEYS = ("ws353", "simlex", "analogy")


class SetSpearman(SpearmanCorrCoef):
    """Spearman's correlation of one pair set's similarities: ``update(results, _)`` with
    ``results[key] = (similarities (N,), human scores (N,))``. NaN when fewer than 2 pairs."""

    def __init__(self, key: str, **kwargs):
        super().__init__(**kwargs)
        self.key = key

    def update(self, results: dict, target: Any = None) -> None:
        pred, gold = results[self.key]
        if len(pred) >= 2:
            super().update(pred.float(), gold.float())

    def compute(self) -> torch.Tensor:
        if not self.preds:
            return torch.tensor(float("nan"))
        return super().compute()


class AnalogyAccuracy(CountRatio):
    """3CosAdd accuracy over the covered analogy questions: ``results["analogy"]`` is the
    per-question hit (N,) of 0.0 and 1.0. NaN when no question is covered."""

    empty_value = float("nan")

    def counts(self, results: dict, target: Any = None):
        hits = results["analogy"]
        return int(hits.sum()), len(hits)


class Covered(Metric):
    """How many items of one evaluation set the vocabulary covers (the last update's count)."""

    full_state_update = False

    def __init__(self, key: str, **kwargs):
        super().__init__(**kwargs)
        self.key = key
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="max")

    def update(self, results: dict, target: Any = None) -> None:
        item = results[self.key]
        self.count = torch.tensor(len(item[0] if isinstance(item, tuple) else item), dtype=torch.long)

    def compute(self) -> torch.Tensor:
        return self.count


class EmbeddingTask(ZooTask):
    """What both objectives share: the evaluation of ``net.vectors()`` on the word-similarity
    and analogy sets, and the linear learning-rate decay of word2vec and GloVe's codes.

    Args:
        net: an embedding net with ``vectors() -> (V, D)`` (``zoo.models.embeddings``).
        vocab: the words by id (a data fact); None: no evaluation (every figure NaN).
        eval_files: ``{"ws353"|"simlex"|"analogy": path}`` to use other copies of the sets
            (default: gensim's).
        loss_reduction: "sum" or "mean" over a batch (see the module docstring).
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``). A scheduler with a
        ``total_iters`` argument (``torch.optim.lr_scheduler.LinearLR``) gets the run's length
        when the config leaves it out, as ``T_max`` and ``total_steps`` do.
    """

    family = "Word embeddings"
    data_facts_used = ("vocab",)
    primary_metric = "ws353_spearman"
    higher_is_better = True
    exact_metrics = ("analogy_accuracy", "ws353_covered", "simlex_covered", "analogy_covered")

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 vocab: Sequence[str] | None = None, eval_files: dict[str, str] | None = None,
                 loss_reduction: str = "sum", gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if loss_reduction not in ("sum", "mean"):
            raise ValueError(f"loss_reduction must be 'sum' or 'mean', got {loss_reduction!r}")
        unknown = sorted(set(eval_files or {}) - set(EVAL_KEYS))
        if unknown:
            raise ValueError(f"eval_files: unknown set(s) {unknown}; the sets are {list(EVAL_KEYS)}")
        self.vocab = list(vocab) if vocab is not None else None
        self.stoi = {w: i for i, w in enumerate(self.vocab)} if self.vocab is not None else None
        self.eval_files = dict(eval_files or {})
        self.loss_reduction = loss_reduction
        self._sets: dict | None = None
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    # -- evaluation ---------------------------------------------------------------------------------
    def eval_sets(self) -> dict:
        """The evaluation sets, read once (``zoo.text_eval``)."""
        if self._sets is None:
            path = {k: self.eval_files.get(k) or gensim_eval_file(k) for k in EVAL_KEYS}
            self._sets = {"ws353": read_word_pairs(path["ws353"]), "simlex": read_word_pairs(path["simlex"]),
                          "analogy": read_analogies(path["analogy"])}
        return self._sets

    @torch.no_grad()
    def evaluate(self) -> dict:
        """``{"ws353": (cos, gold), "simlex": (cos, gold), "analogy": hits}`` of the current vectors."""
        if self.stoi is None:
            empty = torch.zeros(0)
            return {"ws353": (empty, empty), "simlex": (empty, empty), "analogy": empty}
        vectors, sets = self.net.vectors().detach().float().cpu(), self.eval_sets()
        if vectors.shape[0] != len(self.stoi):
            raise ValueError(f"the net has {vectors.shape[0]} word vectors for a vocabulary of {len(self.stoi)} words "
                             "(model.vocab_size must be ${data_fact:vocab_size})")
        return {"ws353": pair_similarities(vectors, self.stoi, sets["ws353"]),
                "simlex": pair_similarities(vectors, self.stoi, sets["simlex"]),
                "analogy": analogy_correct(vectors, self.stoi, sets["analogy"])}

    def build_metrics(self, prefix: str) -> MetricCollection:
        if prefix == "train/":  # the training figure is the loss; the vectors are scored at validation
            return MetricCollection({}, prefix=prefix)
        # no compute groups: the metrics read different parts of one result
        return MetricCollection({"ws353_spearman": SetSpearman("ws353"), "simlex_spearman": SetSpearman("simlex"),
                                 "analogy_accuracy": AnalogyAccuracy(), "ws353_covered": Covered("ws353"),
                                 "simlex_covered": Covered("simlex"), "analogy_covered": Covered("analogy")},
                                prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/ws353_spearman", "WordSim-353 Spearman", 1.0),
                ("test/simlex_spearman", "SimLex-999 Spearman", 1.0),
                ("test/analogy_accuracy", "analogy 3CosAdd (%)", 100.0),
                ("test/ws353_covered", "WS353 pairs covered", 1.0)]

    def objective(self, batch) -> torch.Tensor:
        """The batch's loss (a scalar, ``loss_reduction`` over its examples)."""
        raise NotImplementedError

    def shared_step(self, batch, stage: str):
        loss = self.objective(batch)
        first = next(iter(batch.values()))
        if stage == "train":
            return loss, first.new_zeros(0, dtype=torch.float32), first  # nothing kept: no per-example metric
        # val/test: one probe batch, then the vectors scored on the evaluation sets
        results = self.evaluate()
        outputs = [results["ws353"][0], results["simlex"][0], results["analogy"]]
        return loss, outputs, [results["ws353"][1], results["simlex"][1]]

    def metric_inputs(self, outputs, target, stage: str):
        if stage == "train":
            return outputs, target
        # the latest evaluation (the probe is one batch per stage)
        ws, sl, an = outputs[-3:]
        ws_gold, sl_gold = target[-2:]
        return {"ws353": (ws, ws_gold), "simlex": (sl, sl_gold), "analogy": an}, None

    # -- the learning-rate decay's length --------------------------------------------------------------
    def _build_scheduler(self, opt):
        factory = self.scheduler_factory
        target = factory.func if isinstance(factory, partial) else factory
        given = factory.keywords if isinstance(factory, partial) else {}
        try:
            params = inspect.signature(target).parameters
        except (TypeError, ValueError):
            params = {}
        if "total_iters" in params and given.get("total_iters") is None:
            if self.scheduler_interval == "step":
                length = math.ceil(int(self.trainer.estimated_stepping_batches) / self.accumulate_grad_batches)
            else:
                length = int(self.trainer.max_epochs or 1)
            return factory(opt, total_iters=max(1, length))
        return super()._build_scheduler(opt)


class SkipGramTask(EmbeddingTask):
    """Skip-gram with negative sampling. Net: ``(center (B,), context (B,), negatives (B, K)) ->
    scores (B, 1 + K)``; loss ``zoo.losses.embeddings.sgns_loss``. Args: :class:`EmbeddingTask`'s."""

    batch_contract = "dict: center int64 (B,), context int64 (B,), negatives int64 (B, K)"

    def objective(self, batch) -> torch.Tensor:
        center, context, negatives = batch["center"], batch["context"], batch["negatives"]
        if center.dim() != 1 or context.shape != center.shape or negatives.dim() != 2 \
                or negatives.shape[0] != center.shape[0]:
            raise ValueError(f"a skip-gram batch needs center (B,), context (B,), negatives (B, K); got "
                             f"{tuple(center.shape)}, {tuple(context.shape)}, {tuple(negatives.shape)}")
        return sgns_loss(self.net(center, context, negatives), reduction=self.loss_reduction)


class GloVeTask(EmbeddingTask):
    """GloVe. Net: ``(i (B,), j (B,)) -> w_i . w~_j + b_i + b~_j (B,)``; loss
    ``zoo.losses.embeddings.glove_loss`` with ``x_max`` and ``alpha`` (100 and 3/4, the paper's).
    Other args: :class:`EmbeddingTask`'s."""

    batch_contract = "dict: i int64 (B,), j int64 (B,), x float32 (B,) (the co-occurrence counts, > 0)"

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 vocab: Sequence[str] | None = None, eval_files: dict[str, str] | None = None,
                 loss_reduction: str = "sum", x_max: float = 100.0, alpha: float = 0.75,
                 gradient_clip_val: float | None = None, gradient_clip_algorithm: str = "norm",
                 accumulate_grad_batches: int = 1):
        if not x_max > 0 or not alpha > 0:
            raise ValueError(f"x_max and alpha must be positive, got {x_max}, {alpha}")
        super().__init__(net, optimizer, scheduler, scheduler_interval, vocab, eval_files, loss_reduction,
                         gradient_clip_val, gradient_clip_algorithm, accumulate_grad_batches)
        self.x_max, self.alpha = float(x_max), float(alpha)

    def objective(self, batch) -> torch.Tensor:
        i, j, x = batch["i"], batch["j"], batch["x"]
        if bool((x <= 0).any()):
            raise ValueError("a GloVe batch holds a co-occurrence count <= 0; only non-zero counts are trained on")
        return glove_loss(self.net(i, j), x.float(), self.x_max, self.alpha, reduction=self.loss_reduction)
