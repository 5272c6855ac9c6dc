"""Renaming the keys of a state dict with a table of regular expressions, to load weights
written by another implementation of the same architecture."""
from __future__ import annotations

import re
from typing import Callable, Sequence, Union

import torch

Replacement = Union[str, Callable[[re.Match], str]]

__all__ = ["remap_state_dict"]


def remap_state_dict(
    state_dict: dict[str, torch.Tensor],
    rules: Sequence[tuple[str, Replacement]],
) -> dict[str, torch.Tensor]:
    """Rename every key with the first rule whose pattern matches the whole key.

    A rule is ``(pattern, replacement)``: the replacement is a template for ``re.Match.expand``
    (``r"stem.\\1"``) or a function of the match. Values are passed through unchanged. A key that
    no rule matches is an error, so that a mapping table cannot silently drop weights.
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out: dict[str, torch.Tensor] = {}
    unmatched = []
    for key, value in state_dict.items():
        for pattern, repl in compiled:
            m = pattern.fullmatch(key)
            if m:
                new_key = m.expand(repl) if isinstance(repl, str) else repl(m)
                if new_key in out:
                    raise KeyError(f"two keys map to {new_key!r} (the second is {key!r})")
                out[new_key] = value
                break
        else:
            unmatched.append(key)
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (" ..." if len(unmatched) > 5 else "")
        raise KeyError(f"{len(unmatched)} key(s) match no mapping rule: {shown}")
    return out
