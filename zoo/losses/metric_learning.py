"""Losses of metric learning: an encoder ``f`` is trained so that distances between embeddings
say whether two inputs show the same identity.

* **Triplet loss** (Schroff et al. 2015, FaceNet, eq. 1), with squared Euclidean distances and a
  margin ``alpha``, for an anchor A, a positive P (same identity) and a negative N::

      L(A, P, N) = max(||f(A) - f(P)||^2 - ||f(A) - f(N)||^2 + alpha, 0)

  Within a batch the triplets are mined online from the labels:

  - ``batch_hard`` (Hermans et al. 2017, "In defense of the triplet loss"): each anchor with its
    farthest positive and its nearest negative; the mean over anchors that have both;
  - ``semi_hard`` (FaceNet, section 3.2): each anchor-positive pair with its nearest negative
    that is still farther than the positive (``d(A,P) < d(A,N)``); a pair with no such negative
    takes its farthest negative (the easiest one, so the pair adds as little as possible); the
    mean over anchor-positive pairs;
  - ``batch_all``: every valid triplet, the mean over those with a positive loss (the "active"
    triplets, Hermans et al. 2017), zero when there are none.

* **Contrastive loss** (Hadsell, Chopra & LeCun 2006, eq. 4) on pairs at Euclidean distance
  ``d``, ``Y = 1`` for a pair of the same identity::

      L = Y * 1/2 d^2 + (1 - Y) * 1/2 max(m - d, 0)^2

  Over a batch, every pair ``i < j``; the mean of the same-identity terms and the mean of the
  different-identity terms weigh one half each (a batch of P identities x K images holds far
  more different pairs than same ones).

* **Verification head with binary cross-entropy** (Koch et al. 2015; Taigman et al. 2014): the
  head scores a pair ``sigmoid(sum_k w_k |f(x_i)_k - f(x_j)_k| + b)`` (``zoo.models.siamese``);
  :func:`pair_bce_loss` is the binary cross-entropy of its logits, same-pair and different-pair
  terms weighing one half each, as above.

Every function takes embeddings ``(B, D)`` and integer labels ``(B,)`` (or pairs), and returns
a scalar. A batch with nothing to learn from (no positive pair, or no negative) gives a zero that
is still connected to the graph, so a training step never fails on an unlucky batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["pairwise_squared_distances", "triplet_loss", "batch_hard_triplet_loss", "semi_hard_triplet_loss",
           "batch_all_triplet_loss", "mined_triplet_loss", "contrastive_loss", "pair_bce_loss", "MINING"]

MINING = ("batch_hard", "semi_hard", "batch_all")


def pairwise_squared_distances(emb: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, B): ``||e_i - e_j||^2``, from the differences themselves (exactly 0 on the
    diagonal; the expansion ``|a|^2 + |b|^2 - 2ab`` can go slightly negative)."""
    diff = emb.unsqueeze(1) - emb.unsqueeze(0)  # (B, B, D)
    return diff.pow(2).sum(-1)


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) labels -> (positive, negative) bool (B, B): same label off the diagonal; other label."""
    labels = labels.view(-1)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _check(emb: torch.Tensor, labels: torch.Tensor, where: str) -> None:
    if emb.dim() != 2:
        raise ValueError(f"{where}: embeddings must be (B, D), got {tuple(emb.shape)}")
    if labels.shape != (emb.shape[0],):
        raise ValueError(f"{where}: labels must be (B,) = ({emb.shape[0]},), one per embedding, got "
                         f"{tuple(labels.shape)}")


def _zero(emb: torch.Tensor) -> torch.Tensor:
    return emb.sum() * 0.0  # zero, on the graph


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.2) -> torch.Tensor:
    """The mean of ``max(||a - p||^2 - ||a - n||^2 + margin, 0)`` over given triplets, each
    argument (N, D) (FaceNet, eq. 1)."""
    d_ap = (anchor - positive).pow(2).sum(-1)
    d_an = (anchor - negative).pow(2).sum(-1)
    return F.relu(d_ap - d_an + margin).mean()


def batch_hard_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Each anchor with its hardest positive (farthest) and hardest negative (nearest)."""
    _check(emb, labels, "batch_hard_triplet_loss")
    d = pairwise_squared_distances(emb)
    pos, neg = _masks(labels)
    valid = pos.any(1) & neg.any(1)
    if not valid.any():
        return _zero(emb)
    hardest_pos = torch.where(pos, d, torch.full_like(d, -float("inf"))).amax(1)  # (B,)
    hardest_neg = torch.where(neg, d, torch.full_like(d, float("inf"))).amin(1)  # (B,)
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


def semi_hard_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Each anchor-positive pair with its nearest negative farther than the positive (else its
    farthest negative)."""
    _check(emb, labels, "semi_hard_triplet_loss")
    d = pairwise_squared_distances(emb)
    pos, neg = _masks(labels)
    a_idx, p_idx = (pos & neg.any(1, keepdim=True)).nonzero(as_tuple=True)  # pairs with a negative
    if len(a_idx) == 0:
        return _zero(emb)
    d_ap = d[a_idx, p_idx]  # (M,)
    d_an = d[a_idx]  # (M, B): the anchor's distances to everything
    neg_m = neg[a_idx]  # (M, B)
    farther = neg_m & (d_an > d_ap.unsqueeze(1))
    inf = torch.full_like(d_an, float("inf"))
    semi = torch.where(farther, d_an, inf).amin(1)  # the nearest negative beyond the positive
    easiest = torch.where(neg_m, d_an, -inf).amax(1)  # the farthest negative
    chosen = torch.where(farther.any(1), semi, easiest)
    return F.relu(d_ap - chosen + margin).mean()


def batch_all_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Every triplet (a, p, n) of the batch; the mean over those with a positive loss."""
    _check(emb, labels, "batch_all_triplet_loss")
    d = pairwise_squared_distances(emb)
    pos, neg = _masks(labels)
    valid = pos.unsqueeze(2) & neg.unsqueeze(1)  # (B, B, B): [a, p, n]
    losses = F.relu(d.unsqueeze(2) - d.unsqueeze(1) + margin)  # d(a,p) - d(a,n) + margin
    active = valid & (losses > 0)
    if not active.any():
        return _zero(emb)
    return losses[active].mean()


def mined_triplet_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 0.2,
                       mining: str = "batch_hard") -> torch.Tensor:
    """The triplet loss with online mining by name: one of :data:`MINING`."""
    fn = {"batch_hard": batch_hard_triplet_loss, "semi_hard": semi_hard_triplet_loss,
          "batch_all": batch_all_triplet_loss}.get(mining)
    if fn is None:
        raise ValueError(f"mining must be one of {', '.join(MINING)}, got {mining!r}")
    return fn(emb, labels, margin)


def _balanced_pair_mean(terms: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Half the mean of the same-pair terms plus half the mean of the different-pair terms (one
    kind missing: the mean of the other)."""
    parts = [terms[m].mean() for m in (same, ~same) if m.any()]
    if not parts:
        return _zero(terms)
    return sum(parts) / len(parts)


def _upper_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=labels.device)
    return i, j, labels[i] == labels[j]


def contrastive_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Hadsell et al. 2006 over every pair ``i < j`` of the batch (see the module docstring)."""
    _check(emb, labels, "contrastive_loss")
    i, j, same = _upper_pairs(labels)
    if len(i) == 0:
        return _zero(emb)
    d2 = (emb[i] - emb[j]).pow(2).sum(-1)
    d = torch.sqrt(d2 + 1e-12)  # the epsilon keeps the gradient finite at d = 0
    terms = torch.where(same, 0.5 * d2, 0.5 * F.relu(margin - d).pow(2))
    return _balanced_pair_mean(terms, same)


def pair_bce_loss(logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of pair logits (N,) against ``same`` (N,) in {0, 1}, same-pair and
    different-pair terms weighing one half each."""
    same = same.bool()
    terms = F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype), reduction="none")
    return _balanced_pair_mean(terms, same)
