"""Logistic regression (binary) and softmax regression (multiclass).

Course 1 of the notes: logistic regression computes ``y_hat = sigmoid(w^T x + b)`` and is trained
on the cross-entropy loss; softmax regression generalises it to C classes with
``softmax(W x + b)``.  Both nets return logits (pre-sigmoid / pre-softmax scores); the task
applies the matching loss (``BCEWithLogits`` / ``CrossEntropy``), which is the numerically
stable form of the same objective.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zoo.layers import example_shape
from zoo.registry import register_model


class LinearClassifier(nn.Module):
    """``logits = W flatten(x) + b``.

    Args:
        in_features: number of input features after flattening (784 for 28x28 MNIST).
        num_outputs: 1 for binary logistic regression, C for softmax regression.
    Input: (B, *) with prod(*) == in_features. Output: (B, num_outputs) logits.
    """

    def __init__(self, in_features: int = 784, num_outputs: int = 10, input_shape: tuple[int, ...] | None = None):
        super().__init__()
        self.in_features = in_features
        self.input_shape = tuple(input_shape) if input_shape else (in_features,)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(in_features, num_outputs)
        # Zero initialisation is fine for a convex model (notes, course 1).
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))  # (B, num_outputs)

    def example_inputs(self, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
        return (torch.randn(batch_size, *self.input_shape),)


@register_model(task="classification", paper="Cox 1958, 'The regression analysis of binary sequences'")
def logistic_regression(in_features: int = 784, in_chans: int = 1, image_size: int = 28) -> LinearClassifier:
    """Binary logistic regression: one logit. ``in_features`` is ``in_chans*image_size**2`` for images."""
    return LinearClassifier(in_features, 1, example_shape(in_features, in_chans, image_size))


@register_model(task="classification", paper="Bridle 1990, 'Probabilistic interpretation of feedforward classification network outputs'")
def softmax_regression(
    in_features: int = 784, num_classes: int = 10, in_chans: int = 1, image_size: int = 28
) -> LinearClassifier:
    """Multiclass softmax regression: ``num_classes`` logits."""
    return LinearClassifier(in_features, num_classes, example_shape(in_features, in_chans, image_size))

