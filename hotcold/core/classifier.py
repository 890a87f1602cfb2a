"""What the algorithms need of a network: the :class:`Classifier` protocol.

Directions (Sec. 4.1-4.2), the line search and hard positives (Sec. 4.3) and
generation use a network only through these members. The Caffe implementation
is :class:`hotcold.caffe.CaffeClassifier`; any other object with the same
members (a NumPy model in the tests, another framework) works too.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Diff = np.ndarray | Callable[[np.ndarray, slice], np.ndarray]
"""A seed for B_l: an array ``N x <blob shape>`` or a callable of the blob's
forward values of one batch and that batch's ``slice`` of the images."""


@runtime_checkable
class Classifier(Protocol):
    """A classifier f of uint8 images with the backpropagation operator B_l of Sec. 4.3."""

    num_classes: int
    """K, the number of classes (the size of the logits h(x))."""
    input_scale: float
    """Factor from pixel levels to the network's input units (LeNet: 1/256)."""
    logits_blob: str
    """The penultimate-layer blob h(x) of Sec. 4.2, the one feeding the final softmax."""
    forward_passes: int
    """Forward calls made so far (batched calls count once)."""

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Return ``images`` when they are a uint8 ``N x H x W[ x C]`` batch the net takes, else raise."""

    def predict(self, images: np.ndarray) -> np.ndarray:
        """The logits h(x), ``N x K``: the line search reads the margin h_y - max_{j != y} h_j from them."""

    def classify(self, images: np.ndarray) -> np.ndarray:
        """f(x): the predicted labels (argmax of the logits), int64."""

    def backprop_many(self, images: np.ndarray, blob: str, diffs: Sequence[Diff]) -> np.ndarray:
        """B_l for several seeds at ``blob``: ``S x N x H x W[ x C]`` input gradients in pixel units."""
