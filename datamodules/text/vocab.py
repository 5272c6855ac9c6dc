"""Vocabularies and tokenisation shared by the text datamodules.

A :class:`Vocabulary` maps tokens (characters or words) to ids and back. Special tokens come
first, in the order given, then the corpus's tokens by falling count (ties: alphabetical), so
that the same corpus always gives the same ids. A token outside the vocabulary becomes the
unknown token when the vocabulary has one; otherwise it is refused with an
:class:`UnknownTokenError` that names it.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<s>", "</s>"
IGNORE_INDEX = -100  # a target that no loss or metric counts (torch's cross-entropy default)

# words (letters and digits of any script, with an inner apostrophe: "don't", "o'neill"), or
# any other single non-space character (punctuation)
_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")


def word_tokens(text: str, lowercase: bool = True) -> list[str]:
    """``text`` as word and punctuation tokens: ``"Mr. O'Neill's dog."`` ->
    ``["mr", ".", "o'neill's", "dog", "."]`` (lower-cased unless ``lowercase=False``)."""
    return _WORD.findall(text.lower() if lowercase else text)


class UnknownTokenError(KeyError):
    """A token outside a vocabulary that has no unknown token (or where unknown tokens are refused)."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class Vocabulary:
    """Tokens <-> ids.

    Args:
        tokens: every token, specials included, in id order (no duplicates).
        unk: the token that stands for any token outside the vocabulary (must be in ``tokens``),
            or None: unknown tokens are refused.
    """

    def __init__(self, tokens: Sequence[str], unk: str | None = None):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            dup = sorted(t for t, n in Counter(self.itos).items() if n > 1)
            raise ValueError(f"a vocabulary lists each token once; repeated: {dup[:10]}")
        if unk is not None and unk not in self.stoi:
            raise ValueError(f"the unknown token {unk!r} is not in the vocabulary")
        self.unk = unk

    @classmethod
    def from_counts(cls, counts: Counter, specials: Sequence[str] = (), min_count: int = 1,
                    max_size: int | None = None, unk: str | None = None) -> "Vocabulary":
        """Specials, then the tokens seen at least ``min_count`` times, most frequent first
        (at most ``max_size`` tokens in all, specials included)."""
        if int(min_count) < 1:
            raise ValueError(f"min_count must be a positive integer, got {min_count!r}")
        kept = sorted((t for t, n in counts.items() if n >= min_count and t not in specials),
                      key=lambda t: (-counts[t], t))
        tokens = list(specials) + kept
        if max_size is not None:
            if int(max_size) <= len(specials):
                raise ValueError(f"max_size must exceed the {len(specials)} special tokens, got {max_size}")
            tokens = tokens[: int(max_size)]
        return cls(tokens, unk)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def index(self, token: str) -> int:
        return self.stoi[token]

    def encode(self, tokens: Iterable[str], where: str = "", allow_unknown: bool = True) -> list[int]:
        """Ids of ``tokens``; an unknown token becomes ``unk`` (when there is one and
        ``allow_unknown``), or raises :class:`UnknownTokenError` naming it (and ``where``)."""
        stoi, out = self.stoi, []
        unk_id = stoi[self.unk] if self.unk is not None and allow_unknown else None
        for tok in tokens:
            i = stoi.get(tok)
            if i is None:
                if unk_id is None:
                    known = "".join(t for t in self.itos if len(t) == 1)
                    hint = f" (the characters known are: {known!r})" if known and len(tok) == 1 else ""
                    raise UnknownTokenError(f"{where + ': ' if where else ''}{tok!r} is not in the vocabulary of "
                                            f"{len(self)} tokens{hint}")
                i = unk_id
            out.append(i)
        return out

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]


def read_utf8(path: Path, what: str | None = None) -> str:
    """A text file's content; a file that is not UTF-8 is a ``DataFileError`` naming it."""
    from datamodules.base import DataFileError

    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not UTF-8 text" + (f" ({what})" if what else "")) from None


def refuse_augment(where: str, augment) -> None:
    """Text datamodules take no image augmentation (the ``augment`` group fills every data config)."""
    if augment is not None:
        raise ValueError(f"{where}: augment must be null (augment=none): the image augmentations do not apply to text")
