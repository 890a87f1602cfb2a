"""A pure-NumPy :class:`~hotcold.core.classifier.Classifier` for fast tests of ``hotcold.core``.

:class:`NumpyClassifier` is a two-layer ReLU net on uint8 images,

    h(x) = W2 relu(W1 (x * input_scale).ravel() + b1) + b2,

whose ``logits`` blob is h(x), the penultimate layer of Sec. 4.2. Its
``backprop_many`` is the exact B_l of Sec. 4.3 at that blob (the chain rule
through the ReLU and the input scaling), batched and seeded the way
``hotcold.caffe.classifier.CaffeClassifier`` does it, so the direction, search
and generation code runs on it unchanged in milliseconds, without Caffe or MNIST.

These fixtures use nothing of the session fixtures in ``tests/conftest.py``.
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pytest

from hotcold.core.classifier import Diff


class NumpyClassifier:
    """h(x) = W2 relu(W1 (x * input_scale).ravel() + b1) + b2 on uint8 ``N x H x W[ x C]`` images.

    Parameters
    ----------
    image_shape:
        ``(H, W)`` or ``(H, W, C)`` of one image.
    num_classes:
        K, the size of h(x).
    hidden:
        Width of the ReLU layer.
    seed:
        Seed of :func:`numpy.random.default_rng` drawing the weights.
    input_scale:
        Factor from pixel levels to the network's input (LeNet's 1/256 by default).
    batch_size:
        Most images per forward call; larger inputs are split.
    """

    logits_blob = "logits"

    def __init__(
        self,
        image_shape: tuple[int, ...] = (8, 8),
        num_classes: int = 10,
        hidden: int = 32,
        *,
        seed: int = 0,
        input_scale: float = 1.0 / 256,
        batch_size: int = 64,
    ) -> None:
        rng = np.random.default_rng(seed)
        self.image_shape = tuple(image_shape)
        self.num_classes = int(num_classes)
        self.input_scale = float(input_scale)
        self.batch_size = int(batch_size)
        size = int(np.prod(self.image_shape))
        # Inputs lie in [0, 1). Zero-mean rows of W1 ignore the mean brightness, so the
        # predictions of random images spread over the classes; the pre-activations are O(1).
        w1 = rng.normal(0.0, 4.0 / np.sqrt(size), (hidden, size))
        self.w1 = w1 - w1.mean(axis=1, keepdims=True)
        self.b1 = rng.normal(0.0, 0.5, hidden)
        self.w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), (self.num_classes, hidden))
        self.b2 = rng.normal(0.0, 0.1, self.num_classes)
        self.forward_passes = 0
        self.images_classified = 0
        """Images given to :meth:`predict` (or :meth:`classify`) so far: the line search's evaluations."""

    # -- the model as a function of float pixels (no counting, no checks) ----------------
    def hidden_pre(self, pixels: np.ndarray) -> np.ndarray:
        """W1 (x * input_scale).ravel() + b1 for float pixels ``N x H x W[ x C]``."""
        flat = np.asarray(pixels, np.float64).reshape(len(pixels), -1) * self.input_scale
        return flat @ self.w1.T + self.b1

    def logits_of(self, pixels: np.ndarray) -> np.ndarray:
        """h(x) ``N x K`` for float pixels (not counted as a forward pass)."""
        return np.maximum(self.hidden_pre(pixels), 0.0) @ self.w2.T + self.b2

    # -- the Classifier protocol -----------------------------------------------------------
    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Return ``images`` if they are a uint8 ``N x H x W[ x C]`` batch of this net's shape."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got dtype {images.dtype}")
        if images.shape[1:] != self.image_shape:
            raise ValueError(f"images must have shape N x {self.image_shape}, got {images.shape}")
        return images

    def _batches(self, images: np.ndarray):
        """(rows, logits, hidden pre-activations) per batch, one forward pass each."""
        for start in range(0, len(images), self.batch_size):
            rows = slice(start, min(start + self.batch_size, len(images)))
            pre = self.hidden_pre(images[rows])
            self.forward_passes += 1
            yield rows, np.maximum(pre, 0.0) @ self.w2.T + self.b2, pre

    def predict(self, images: np.ndarray) -> np.ndarray:
        """h(x) ``N x K`` float32, like ``CaffeClassifier.predict``."""
        images = self.check_images(images)
        out = np.empty((len(images), self.num_classes), np.float32)
        for rows, logits, _ in self._batches(images):
            out[rows] = logits
        self.images_classified += len(images)
        return out

    def classify(self, images: np.ndarray) -> np.ndarray:
        """f(x) = argmax h(x), int64."""
        return self.predict(images).argmax(axis=1).astype(np.int64)

    def backprop_many(self, images: np.ndarray, blob: str, diffs: Sequence[Diff]) -> np.ndarray:
        """B_l at ``logits``: ``S x N x H x W[ x C]`` float64 gradients of seed . h(x) in pixel units."""
        images = self.check_images(images)
        if blob != self.logits_blob:
            raise ValueError(f"NumpyClassifier has no blob {blob!r}; its only blob is {self.logits_blob!r}")
        seeds = list(diffs)
        out = np.empty((len(seeds), len(images)) + self.image_shape, np.float64)
        for rows, logits, pre in self._batches(images):
            values = logits.astype(np.float32)
            active = pre > 0
            for s, seed in enumerate(seeds):
                if callable(seed):
                    diff = seed(values.copy(), rows)
                else:
                    diff = np.broadcast_to(np.asarray(seed, np.float32), (len(images), self.num_classes))[rows]
                diff = np.asarray(diff, np.float64).reshape(len(values), self.num_classes)
                grad = ((diff @ self.w2) * active) @ self.w1 * self.input_scale
                out[s, rows] = grad.reshape((len(values),) + self.image_shape)
        return out


def correctly_classified(net: NumpyClassifier, count: int, *, seed: int = 1, smooth: bool = False):
    """``count`` random uint8 images and labels equal to the net's own predictions.

    ``smooth`` draws low-frequency images (a bilinear upsampling of a 4 x 4
    grid plus a little noise), which ECC can align for PASS (Sec. 3).
    """
    rng = np.random.default_rng(seed)
    if smooth:
        height, width = net.image_shape[:2]
        coarse = rng.uniform(0, 255, (count, 4, 4) + net.image_shape[2:]).astype(np.float32)
        pixels = np.stack([cv2.resize(c, (width, height), interpolation=cv2.INTER_LINEAR) for c in coarse])
        pixels = pixels.reshape((count,) + net.image_shape) + rng.normal(0, 4, (count,) + net.image_shape)
    else:
        pixels = rng.uniform(0, 256, (count,) + net.image_shape)
    images = np.clip(np.floor(pixels), 0, 255).astype(np.uint8)
    labels = net.logits_of(images).astype(np.float32).argmax(axis=1).astype(np.int64)
    return images, labels


@pytest.fixture
def numpy_net() -> NumpyClassifier:
    """A fresh 8 x 8 gray, 10-class NumpyClassifier (its counters start at 0)."""
    return NumpyClassifier()


@pytest.fixture
def correct_images(numpy_net: NumpyClassifier) -> tuple[np.ndarray, np.ndarray]:
    """24 random 8 x 8 uint8 images labelled with ``numpy_net``'s own predictions (all correct)."""
    return correctly_classified(numpy_net, 24)
