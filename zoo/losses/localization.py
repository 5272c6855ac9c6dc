"""The loss of classification with localization, on the target vector
``y = [p_c, b_x, b_y, b_h, b_w, c_1 .. c_n]`` (``zoo.ops.encode_localization``).

The course notes' loss is the squared error on every component when there is an object and on
``p_c`` alone when there is none::

    L(y_hat, y) = sum_i (y_hat_i - y_i)^2     if p_c = 1
                  (y_hat_1 - y_1)^2           if p_c = 0

and note that in practice one uses a logistic loss for ``p_c``, a squared error for the box and
a softmax cross-entropy for the class. :func:`localization_loss` computes either
(``form="squared"`` or ``form="mixed"``, the default) from the net's raw outputs: ``p_c`` and the
box are squashed with a sigmoid (the box's centre and size are fractions of the image, in
[0, 1]), the classes with a softmax. Landmarks (``2K`` coordinates, fractions of the image) add a
squared error on images that hold an object.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["localization_loss"]


def localization_loss(pred: torch.Tensor, target: torch.Tensor, num_classes: int, form: str = "mixed",
                      box_weight: float = 5.0, landmark_weight: float = 5.0) -> tuple[torch.Tensor, dict]:
    """Mean loss over the batch, and its parts (each a mean over the batch, detached).

    Args:
        pred: ``(B, 5 + n [+ 2K])`` raw scores: ``p_c`` logit, 4 box logits, ``n`` class logits
            [, ``2K`` landmark logits].
        target: ``(B, 5 + n [+ 2K])``: ``p_c`` in {0, 1}, the box ``(b_x, b_y, b_h, b_w)`` and the
            landmarks as fractions of the image, the class one-hot.
        form: ``"squared"`` (the notes' formula on the squashed outputs) or ``"mixed"`` (logistic
            loss for ``p_c``, squared error for the box, cross-entropy for the class).
        box_weight, landmark_weight: weights of the box and landmark terms (``"mixed"`` only: in
            ``"squared"`` every component weighs 1, as in the formula).
    """
    if form not in ("squared", "mixed"):
        raise ValueError(f"form must be 'squared' or 'mixed', got {form!r}")
    if pred.shape != target.shape or pred.ndim != 2 or pred.shape[1] < 5 + num_classes:
        raise ValueError(f"pred and target must both have shape (B, 5 + num_classes [+ 2K]) with num_classes="
                         f"{num_classes}; got {tuple(pred.shape)} and {tuple(target.shape)}")
    n = num_classes
    present = target[:, 0]
    box = torch.sigmoid(pred[:, 1:5])
    box_sq = ((box - target[:, 1:5]) ** 2).sum(1)
    has_landmarks = pred.shape[1] > 5 + n
    landmark_sq = ((torch.sigmoid(pred[:, 5 + n:]) - target[:, 5 + n:]) ** 2).sum(1) if has_landmarks else None
    if form == "squared":
        p_term = (torch.sigmoid(pred[:, 0]) - present) ** 2
        class_term = ((torch.softmax(pred[:, 5:5 + n], dim=1) - target[:, 5:5 + n]) ** 2).sum(1)
        per_example = p_term + present * (box_sq + class_term + (landmark_sq if has_landmarks else 0.0))
        parts = {"objectness": p_term, "box": present * box_sq, "class": present * class_term}
    else:
        p_term = F.binary_cross_entropy_with_logits(pred[:, 0], present, reduction="none")
        labels = target[:, 5:5 + n].argmax(1)
        class_term = F.cross_entropy(pred[:, 5:5 + n], labels, reduction="none")
        per_example = p_term + present * (box_weight * box_sq + class_term
                                          + (landmark_weight * landmark_sq if has_landmarks else 0.0))
        parts = {"objectness": p_term, "box": present * box_weight * box_sq, "class": present * class_term}
    if has_landmarks:
        parts["landmarks"] = present * landmark_sq * (1.0 if form == "squared" else landmark_weight)
    return per_example.mean(), {k: v.detach().mean() for k, v in parts.items()}
