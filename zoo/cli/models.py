"""``zoo-models``: list the registered models with their task, parameter count, FLOPs and paper.

FLOPs are forward floating-point operations per example (2 per multiply-accumulate) at the input
the model is usually quoted at: 224x224 for ImageNet-style models, the model's own example input
(32x32 CIFAR / LeNet, 28x28 MNIST) otherwise; the ``input`` column says which.

    zoo-models                 # every model
    zoo-models 'lenet*'        # a shell-style pattern
    zoo-models --task classification --json
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from zoo.flops import count_flops, format_flops, reference_input_shape
from zoo.registry import count_parameters, create_model, list_models, model_card


def measure(name: str, device: str = "cpu") -> dict:
    """One model's listing row: built on ``device`` (``meta``: shapes only, no memory, no
    arithmetic), its parameters counted and its forward FLOPs counted at the reference input."""
    card = model_card(name)
    with torch.device(device):
        net = create_model(name)
        shape = reference_input_shape(name)
        example = net.example_inputs(1) if hasattr(net, "example_inputs") else None
        if example is not None and (len(example) != 1 or not example[0].is_floating_point()):
            # token ids, or several inputs (a pair of embeddings): counted on the net's own example
            flops, shape = count_flops(net, inputs=example), tuple(example[0].shape[1:])
        else:
            flops = count_flops(net, shape)
    return {"name": name, "family": card.family, "task": card.task,
            "params": count_parameters(net), "flops": flops,
            "input": "x".join(str(d) for d in shape), "paper": card.paper}


def rows(pattern: str = "*", task: str | None = None, device: str = "meta") -> list[dict]:
    """The listing. Each model is measured on the meta device, where building it allocates
    nothing and its forward only propagates shapes (the counts are those of a real forward:
    parameters and FLOPs depend on shapes alone); a model whose forward needs real values (an
    ``.item()``, ``nonzero``, a data-dependent loop of a decoder, NMS) is measured on the CPU."""
    out = []
    for name in list_models(pattern, task):
        try:
            out.append(measure(name, device))
        except (RuntimeError, NotImplementedError):
            if device == "cpu":
                raise
            out.append(measure(name, "cpu"))  # raises what a real forward raises, if anything
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="zoo-models", description=__doc__.splitlines()[0])
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern (default: *)")
    p.add_argument("--task", default=None, help="only models for this task")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = p.parse_args(argv)
    table = rows(args.pattern, args.task)
    if not table:
        print(f"no registered model matches {args.pattern!r}"
              + (f" with task {args.task!r}" if args.task else ""), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    headers = ["name", "family", "task", "params", "FLOPs", "input", "paper"]
    cells = [[r["name"], r["family"], r["task"], f"{r['params']:,}", format_flops(r["flops"]),
              r["input"], r["paper"]] for r in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
