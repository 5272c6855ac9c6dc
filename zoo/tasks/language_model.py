"""Language modelling (course 5 of the notes): a recurrent net predicts each next token, trained
with the cross-entropy of the next tokens and scored by perplexity.

Two kinds of batch (``batch_contract``):

* padded sequences (``tokens``, ``targets``, ``lengths``): each sequence read from a zero state
  (character-level names, ``datamodules.text.FakerNamesDataModule``);
* BPTT windows of contiguous streams (``tokens``, ``targets``, ``position``): window ``k + 1``
  continues every row of window ``k`` (``datamodules.text.WordLMDataModule``). With
  ``carry_state`` (the default) the recurrent state at the end of a window is the initial state
  of the next one, detached from the graph: truncated backpropagation through time (Williams &
  Peng 1990; Zaremba et al. 2014). The state starts from zeros at window 0 of every epoch and
  stage; it needs a net with ``forward_with_state`` (``zoo.models.rnn.RecurrentLanguageModel``).

Metrics, exact in the sense that they are computed from sums over tokens, never from means of
batch figures: ``perplexity = exp(sum of next-token NLL / number of tokens scored)`` over the
whole split, and beside it ``unigram_perplexity``, the same for the add-one-smoothed unigram
distribution of the training targets (``unigram_counts``, a data fact): the baseline a model
that ignores context reaches. Both are summed in float64.

Sampling (``predict_step``, ``zoo-predict``; ``test_outputs``, the run's ``samples``): a prompt
is read, then ``max_new_tokens`` tokens are drawn one at a time with ``temperature`` and
``top_k``, each fed back with the carried state, until the end token.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchmetrics import Metric, MetricCollection

from zoo.layers.recurrent import draw_tokens
from zoo.tasks.base import OptimizerFactory, SchedulerFactory, ZooTask

__all__ = ["LanguageModelTask", "Perplexity", "draw_tokens"]

IGNORE_INDEX = -100  # targets that are padding (the datamodules' convention, torch's default)


class Perplexity(Metric):
    """``exp(total NLL / tokens)``, from per-row sums: ``update(nll, counts)`` with ``nll`` (N, C)
    summed negative log-likelihoods per row and model (column ``column`` is this metric's) and
    ``counts`` (N,) the tokens scored per row. States are float64 and int64 sums (summed across
    processes)."""

    full_state_update = False
    higher_is_better = False

    def __init__(self, column: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.column = int(column)
        self.add_state("nll", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, nll: torch.Tensor, counts: torch.Tensor) -> None:
        self.nll = self.nll + nll[:, self.column].double().sum()
        self.count = self.count + counts.long().sum()

    def compute(self) -> torch.Tensor:
        return torch.exp(self.nll / self.count)


def _detach_state(state):
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return tuple(s.detach() for s in state)


def _state_rows(state) -> int:
    first = state if isinstance(state, torch.Tensor) else state[0]
    return int(first.shape[1])  # (layers * dirs, B, H)


class LanguageModelTask(ZooTask):
    """Next-token cross-entropy and perplexity for a recurrent language model.

    Args:
        net: (B, T) token ids [, lengths (B,)] -> (B, T, V) logits, step t scoring token t + 1;
            ``forward_with_state`` for BPTT windows with ``carry_state`` and for sampling.
        vocab: the tokens, by id (a data fact: decodes the samples).
        token_join: what joins decoded tokens ("" for characters, " " for words; a data fact).
        bos_idx, eos_idx, pad_idx: the start, end and padding ids (data facts; None where the
            corpus has none). A sample starts from ``<s>`` (else from the end token: a new
            sentence) and stops at the end token.
        unigram_counts: how often each id is a training target (a data fact): the unigram
            baseline's distribution, add-one smoothed. None: no baseline.
        carry_state: carry the recurrent state across BPTT windows (truncated BPTT).
        num_samples, max_new_tokens, temperature, top_k, sample_seed: sampling, for
            ``zoo-predict`` (``num_samples`` per prompt) and the test run's ``samples``.
        optimizer, scheduler, scheduler_interval, gradient_clip_val, gradient_clip_algorithm,
        accumulate_grad_batches: as in every task (``zoo.tasks.base``); clip the gradient norm
        (``trainer.gradient_clip_val``) as recurrent nets need.
    """

    family = "Recurrent language models"
    batch_contract = ("dict: tokens int64 (B, T), targets int64 (B, T) (the next tokens; -100 = padding), and "
                      "either lengths int64 (B,) (padded sequences, each from a zero state) or position (int, the "
                      "index of a BPTT window; window k + 1 continues the rows of window k)")
    data_facts_used = ("vocab", "token_join", "bos_idx", "eos_idx", "pad_idx", "unigram_counts")
    primary_metric = "perplexity"
    higher_is_better = False
    exact_metrics = ()

    def __init__(self, net: nn.Module, optimizer: OptimizerFactory | None = None,
                 scheduler: SchedulerFactory | None = None, scheduler_interval: str = "epoch",
                 vocab: Sequence[str] | None = None, token_join: str = "", bos_idx: int | None = None,
                 eos_idx: int | None = None, pad_idx: int | None = None,
                 unigram_counts: Sequence[int] | None = None, carry_state: bool = True, num_samples: int = 10,
                 max_new_tokens: int = 30, temperature: float = 1.0, top_k: int | None = None,
                 sample_seed: int = 0, gradient_clip_val: float | None = None,
                 gradient_clip_algorithm: str = "norm", accumulate_grad_batches: int = 1):
        super().__init__(net, optimizer, scheduler, scheduler_interval, gradient_clip_val,
                         gradient_clip_algorithm, accumulate_grad_batches)
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: greedy), got {temperature}")
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be a positive integer or null, got {top_k}")
        if int(num_samples) < 1 or int(max_new_tokens) < 1:
            raise ValueError(f"num_samples and max_new_tokens must be positive, got {num_samples}, {max_new_tokens}")
        self.vocab = list(vocab) if vocab is not None else None
        self.token_join = token_join
        self.bos_idx, self.eos_idx, self.pad_idx = bos_idx, eos_idx, pad_idx
        self.carry_state = bool(carry_state)
        self.num_samples, self.max_new_tokens = int(num_samples), int(max_new_tokens)
        self.temperature, self.top_k, self.sample_seed = float(temperature), top_k, int(sample_seed)
        self.has_unigram = unigram_counts is not None
        if self.has_unigram:
            counts = torch.as_tensor(list(unigram_counts), dtype=torch.float64)
            if self.vocab is not None and len(counts) != len(self.vocab):
                raise ValueError(f"unigram_counts has {len(counts)} entries for a vocabulary of {len(self.vocab)}")
            # add-one smoothing, so that a token never seen as a training target has a finite cost
            self.register_buffer("unigram_log_probs", torch.log((counts + 1) / (counts.sum() + len(counts))).float(),
                                 persistent=False)
        self._carry: dict[str, tuple] = {}
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler"])
        self.init_metrics()

    # -- metrics -----------------------------------------------------------------------------------
    def build_metrics(self, prefix: str) -> MetricCollection:
        metrics = {"perplexity": Perplexity(0)}
        if self.has_unigram:
            metrics["unigram_perplexity"] = Perplexity(1)
        # no compute groups: the two metrics have states of one shape, which torchmetrics would merge
        # whenever their first updates happen to agree (e.g. uniform logits)
        return MetricCollection(metrics, prefix=prefix, compute_groups=False)

    @classmethod
    def report_columns(cls) -> list[tuple[str, str, float]]:
        return [("test/perplexity", "test perplexity", 1.0),
                ("test/unigram_perplexity", "unigram baseline perplexity", 1.0)]

    # -- the step ----------------------------------------------------------------------------------
    def _initial_state(self, batch: dict, stage: str):
        """The carried state for a BPTT window (None: zeros): the state the previous window
        ended with, when this window is its successor. A window evaluated again (an optimizer
        that re-evaluates its closure) starts from the state it started from the first time."""
        position = batch.get("position")
        if not self.carry_state or position is None or not hasattr(self.net, "forward_with_state"):
            return None
        position = int(position)
        kept = self._carry.get(stage)
        if kept is None:
            return None
        last_position, state_in, state_out = kept
        if position == last_position:
            return state_in
        if position == last_position + 1 and state_out is not None and \
                _state_rows(state_out) == batch["tokens"].shape[0]:
            return state_out
        return None

    def shared_step(self, batch, stage: str):
        tokens, targets = batch["tokens"], batch["targets"]
        if tokens.dim() != 2 or tokens.shape != targets.shape:
            raise ValueError(f"a language-model batch holds tokens and targets of the same shape (B, T); got "
                             f"{tuple(tokens.shape)} and {tuple(targets.shape)}")
        lengths = batch.get("lengths")
        if lengths is not None and bool((lengths < 1).any()):
            raise ValueError("an empty sequence in the batch (length 0): every sequence needs at least one "
                             "token to predict")
        state = self._initial_state(batch, stage)
        if batch.get("position") is not None and self.carry_state and hasattr(self.net, "forward_with_state"):
            logits, new_state = self.net.forward_with_state(tokens, state)
            self._carry[stage] = (int(batch["position"]), state, _detach_state(new_state))
        elif lengths is not None:
            logits = self.net(tokens, lengths)
        else:
            logits = self.net(tokens)
        b, t, v = logits.shape  # (B, T, V)
        nll = F.cross_entropy(logits.reshape(b * t, v), targets.reshape(-1), ignore_index=IGNORE_INDEX,
                              reduction="none").view(b, t)  # (B, T), 0 at padding
        real = targets != IGNORE_INDEX  # (B, T)
        counts = real.sum(1)  # (B,): tokens scored per row
        loss = nll.sum() / counts.sum().clamp(min=1)
        row_nll = nll.detach().sum(1, keepdim=True)  # (B, 1)
        if self.has_unigram:
            uni = -self.unigram_log_probs[targets.clamp(min=0)] * real  # (B, T)
            row_nll = torch.cat([row_nll, uni.sum(1, keepdim=True)], 1)  # (B, 2)
        return loss, row_nll, counts

    def on_train_epoch_start(self) -> None:
        self._carry.pop("train", None)

    def on_validation_epoch_start(self) -> None:
        self._carry.pop("val", None)

    def on_test_epoch_start(self) -> None:
        super().on_test_epoch_start()
        self._carry.pop("test", None)

    # -- sampling ----------------------------------------------------------------------------------
    def start_prompt(self) -> torch.Tensor:
        """(1, 1): ``<s>``, or the end token (a new sentence of a stream)."""
        start = self.bos_idx if self.bos_idx is not None else self.eos_idx
        if start is None:
            raise ValueError("the task knows no start or end token (data facts bos_idx / eos_idx) to sample from")
        return torch.tensor([[start]], dtype=torch.long, device=self.device)

    def sample(self, prompt: torch.Tensor, n: int | None = None, seed: int | None = None) -> torch.Tensor:
        """``n`` (default ``num_samples``) continuations of one prompt (T0,): (n, max_new_tokens) ids."""
        n = self.num_samples if n is None else int(n)
        g = torch.Generator(device=self.device).manual_seed(self.sample_seed if seed is None else int(seed))
        banned = [i for i in (self.pad_idx, self.bos_idx) if i is not None]
        was_training = self.net.training
        self.net.eval()
        try:
            return draw_tokens(self.net, prompt.to(self.device).view(1, -1).expand(n, -1), self.max_new_tokens,
                               self.temperature, self.top_k, g, self.eos_idx, banned)
        finally:
            self.net.train(was_training)

    def decode(self, ids) -> str:
        """Ids as text, up to the end token (the start token left out)."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if i == self.eos_idx:
                break
            if i == self.bos_idx:
                continue
            out.append(self.vocab[i] if self.vocab is not None else str(i))
        return self.token_join.join(out)

    def predict_step(self, batch, batch_idx: int = 0):
        """For each prompt of ``{"prompts": [ids (T0,), ...]}``: ``(prompt, samples)``, the
        samples (num_samples, max_new_tokens)."""
        prompts = batch["prompts"] if isinstance(batch, dict) else batch
        return [(p, self.sample(p, seed=self.sample_seed + k)) for k, p in enumerate(prompts)]

    def describe_prediction(self, output, top: int = 5) -> dict:
        prompt, samples = output
        head = self.decode(prompt)
        return {"prompt": head, "samples": [head + self.token_join + self.decode(s) if head and self.token_join
                                            else head + self.decode(s) for s in samples]}

    def test_outputs(self) -> dict[str, Any]:
        """``samples``: ``num_samples`` sequences drawn from the start token by the tested net."""
        if self.vocab is None or (self.bos_idx is None and self.eos_idx is None):
            return {}
        ids = self.sample(self.start_prompt()[0])
        return {"samples": [self.decode(s) for s in ids],
                "sampling": {"temperature": self.temperature, "top_k": self.top_k, "seed": self.sample_seed}}

    @classmethod
    def draw_outputs(cls, record: dict, folder: Path, data_facts: dict) -> list[str]:
        """``samples.png``: the sampled sequences of the test run, as text; ``samples.txt`` too."""
        samples = record.get("samples") or []
        if not samples:
            return []
        (folder / "samples.txt").write_text("\n".join(samples) + "\n", encoding="utf-8")
        from zoo.reporting import plots

        fig = plots.plt.figure(figsize=(6, 0.32 * len(samples) + 0.9))
        fig.text(0.02, 0.97, f"{record.get('experiment', '')}: samples", va="top", fontsize=10, weight="bold")
        for k, s in enumerate(samples):
            shown = s if len(s) <= 90 else s[:87] + "..."
            fig.text(0.02, 0.97 - (k + 1.4) / (len(samples) + 2.2), shown, va="top", fontsize=9, family="monospace")
        fig.savefig(folder / "samples.png", dpi=100)
        plots.plt.close(fig)
        return ["samples.png"]
