"""Fine-tuning a pretrained net: which parameters train, and at which learning rate.

The **head** is the last module that holds parameters (the classifier: ``fc``, ``fc8``,
``classifier.3`` ... or NiN's last 1x1 convolution); the rest, the **body**, is cut into
``groups`` consecutive blocks of parameters in registration order (input side first).

Presets (``conf/finetune/``, set as ``task.finetune``):

* ``full``: everything trains at the base learning rate;
* ``linear_probe``: only the head trains; the body is frozen, its batch-norm statistics too;
* ``gradual_unfreeze``: the head trains from the start; every ``unfreeze_every`` epochs the next
  body group from the top joins (Howard & Ruder 2018, ULMFiT); frozen groups keep their
  batch-norm statistics;
* ``reset_head: true`` (any mode) starts the head afresh: for a pretrained net whose classes are
  others of the same count (another class count replaces the head anyway);
* ``discriminative``: everything trains, the top body group at ``lr * layer_decay``, the next
  at ``lr * layer_decay**2`` ... (layer-wise learning rates), the head at ``lr``.

``probe_at: <module name>`` (any mode; meant for ``linear_probe``) cuts the net after that
module: the layers above it are dropped and a new linear head reads its flattened output. The
top layers of a net trained on other classes are the least transferable (Yosinski, Clune,
Bengio & Lipson 2014, "How transferable are features in deep neural networks?"), and a linear
classifier can read any layer (Alain & Bengio 2016, "Understanding intermediate layers using
linear classifier probes"). An unknown name is refused with the list of the net's modules.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

MODES = ("full", "linear_probe", "gradual_unfreeze", "discriminative")


@dataclass
class FinetuneSpec:
    mode: str = "full"
    groups: int = 4              # body groups (gradual unfreezing, layer-wise rates)
    layer_decay: float = 0.5     # discriminative: rate ratio between neighbouring groups
    unfreeze_every: int = 2      # gradual: epochs between two unfreezings
    reset_head: bool = False     # start the head afresh (new classes of the same count)
    probe_at: str | None = None  # cut the net after this module; a new linear head reads it

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"finetune mode must be one of {MODES}, got {self.mode!r}")
        if self.groups < 1 or self.unfreeze_every < 1 or not 0 < self.layer_decay <= 1:
            raise ValueError(f"bad finetune settings: {self}")


class CutNet(nn.Module):
    """A net cut after one of its modules, with a new linear head on the flattened output.

    ``body`` is the net's graph up to ``node`` (torch.fx, so any net whose forward traces, not
    only sequential ones); its parameters keep their names under ``body.``, so that pretrained
    weights loaded into the full net are kept. ``head`` is ``nn.Linear(features, num_classes)``.
    Input: what the net takes. Output: (B, num_classes) logits.
    """

    def __init__(self, net: nn.Module, node: str, num_classes: int):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor

        names = [n for n, _ in net.named_modules() if n]
        if node not in names:
            shown = ", ".join(names[:60]) + (f" ... ({len(names)} in all)" if len(names) > 60 else "")
            raise ValueError(f"finetune.probe_at={node!r} is not a module of {type(net).__name__}; "
                             f"its modules are: {shown}")
        if not hasattr(net, "example_inputs"):
            raise ValueError(f"{type(net).__name__} has no example_inputs(): cannot size the probe's head")
        self.node = node
        try:
            self.body = create_feature_extractor(net, return_nodes=[node])
        except Exception as err:  # torch.fx cannot trace data-dependent control flow
            raise ValueError(f"cannot cut {type(net).__name__} after {node!r}: its forward does not trace "
                             f"with torch.fx ({type(err).__name__}: {err})") from err
        example = net.example_inputs(batch_size=1)
        self.input_shapes = [tuple(x.shape[1:]) for x in example]  # per input, without the batch
        was_training = net.training
        with torch.no_grad():
            self.body.eval()
            features = self.body(*example)[node].flatten(1).shape[1]
        self.body.train(was_training)
        self.head = nn.Linear(features, num_classes)
        # No ``zoo_spec``: a cut net is no registry architecture (its weights cannot be published
        # as one); checkpoints rebuild it from the task's ``net_spec`` and ``finetune``.

    def forward(self, *args) -> torch.Tensor:
        return self.head(self.body(*args)[self.node].flatten(1))

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return tuple(torch.randn(batch_size, *shape) for shape in self.input_shapes)


def head_module(net: nn.Module) -> tuple[str, nn.Module]:
    """(name, module) of the head: the module the net declares (``head_name``, e.g. ``"fc"``;
    a detector's box regressor comes last but is no classifier head), else the last module, in
    registration order, that holds parameters of its own (every classifier of the zoo)."""
    declared = getattr(net, "head_name", None)
    if isinstance(declared, str):
        try:
            return declared, net.get_submodule(declared)
        except AttributeError:
            raise ValueError(f"{type(net).__name__}.head_name is {declared!r}, which is not one of its modules") from None
    owners = [(name, mod) for name, mod in net.named_modules()
              if any(True for _ in mod.parameters(recurse=False))]
    if not owners:
        raise ValueError("the net has no parameters")
    return owners[-1]


def num_outputs(net: nn.Module) -> int:
    """The class count of a classifier: ``out_features`` / ``out_channels`` of its head."""
    _, head = head_module(net)
    for attr in ("out_features", "out_channels"):
        if hasattr(head, attr):
            return int(getattr(head, attr))
    raise ValueError(f"cannot tell the class count of the head {type(head).__name__}")


def split_head(net: nn.Module) -> tuple[list[str], list[list[str]]]:
    """(head parameter names, body parameter names in ``groups``-agnostic order)."""
    name, _ = head_module(net)
    prefix = f"{name}." if name else ""
    names = [n for n, _ in net.named_parameters()]
    head = [n for n in names if n.startswith(prefix) and "." not in n[len(prefix):]]
    body = [n for n in names if n not in head]
    return head, body


def reset_head(net: nn.Module) -> str:
    """Re-initialise the head module (its own ``reset_parameters``); returns its name."""
    name, mod = head_module(net)
    if not hasattr(mod, "reset_parameters"):
        raise ValueError(f"the head {name!r} ({type(mod).__name__}) cannot be re-initialised")
    mod.reset_parameters()
    return name


def body_groups(body: list[str], groups: int) -> list[list[str]]:
    """``body`` cut into ``groups`` consecutive blocks of (nearly) equal size, input side first."""
    groups = max(1, min(groups, len(body)))
    size, extra = divmod(len(body), groups)
    out, i = [], 0
    for g in range(groups):
        n = size + (1 if g < extra else 0)
        out.append(body[i:i + n])
        i += n
    return [g for g in out if g]


def param_groups(net: nn.Module, base_lr: float, spec: FinetuneSpec) -> list[dict]:
    """Optimizer parameter groups (every parameter is in one; frozen ones are switched off by
    ``apply_freezing``, not left out, so that they can join later)."""
    params = dict(net.named_parameters())
    head, body = split_head(net)
    groups = body_groups(body, spec.groups)
    out = []
    for depth, names in enumerate(reversed(groups), 1):  # depth 1 = the group next to the head
        lr = base_lr * (spec.layer_decay ** depth if spec.mode == "discriminative" else 1.0)
        out.append({"params": [params[n] for n in names], "lr": lr, "name": f"body{len(groups) - depth}"})
    out.append({"params": [params[n] for n in head], "lr": base_lr, "name": "head"})
    return out


def trainable_groups(spec: FinetuneSpec, n_groups: int, epoch: int) -> int:
    """How many body groups (from the top) train in ``epoch``."""
    if spec.mode == "linear_probe":
        return 0
    if spec.mode == "gradual_unfreeze":
        return min(n_groups, epoch // spec.unfreeze_every)
    return n_groups


def apply_freezing(net: nn.Module, spec: FinetuneSpec, epoch: int) -> list[str]:
    """Set ``requires_grad`` for ``epoch`` and put the batch norms of frozen groups in eval mode
    (their running statistics stay the pretrained ones). Returns the frozen parameter names."""
    head, body = split_head(net)
    groups = body_groups(body, spec.groups)
    n_train = trainable_groups(spec, len(groups), epoch)
    frozen = [n for g in groups[: len(groups) - n_train] for n in g]
    frozen_set = set(frozen)
    for name, p in net.named_parameters():
        p.requires_grad_(name not in frozen_set)
    for mod_name, mod in net.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            own = [f"{mod_name}.{n}" for n, _ in mod.named_parameters(recurse=False)]
            if own and all(n in frozen_set for n in own):
                mod.eval()
    return frozen
