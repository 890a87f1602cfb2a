"""Adversarial directions for a batch of images, all through B_l (Sec. 4.1-4.3).

For images x with labels y and logits h(x) at the penultimate layer:

* FGV (Eq. 6): eta = grad_x J(theta, x, y), J the softmax cross-entropy. Its
  seed at the logits blob is dJ/dh = softmax(h) - onehot(y), so
  eta = B_l(softmax(h) - onehot(y)).
* FGS [8]: eta = sign(grad_x J(theta, x, y)).
* HC-D-k (Eq. 7): omega_hc = |h_t| at the hot class t, -h_y at the cold class
  y, 0 elsewhere, where t is the k-th highest-scoring class other than y;
  eta = B_l(omega_hc).
* HC-S-k: eta = sign(B_l(omega_hc)).

One forward pass per batch serves every seed: FGS and FGV share one backward
pass, HC-D-k and HC-S-k another for each k. Directions are returned in pixel
units and normalized so that max |eta_hat| = 1 pixel level (see search.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hotcold.core.classifier import Classifier
from hotcold.core.methods import Method


@dataclass(frozen=True)
class Directions:
    """Normalized directions for ``M`` methods x ``N`` images.

    Attributes
    ----------
    methods:
        The ``M`` methods, in the order of the first axis.
    eta_hat:
        ``M x N x H x W[ x C]`` float64, each direction divided by its largest
        absolute value (max |eta_hat| = 1); zero where ``valid`` is False.
    valid:
        ``M x N`` bool: False where the raw direction is all zero.
    hot_class:
        ``M x N`` int: the hot class t of HC methods, -1 for FGS / FGV.
    logits:
        ``N x K`` logits h(x) of the unperturbed images.
    """

    methods: tuple[Method, ...]
    eta_hat: np.ndarray
    valid: np.ndarray
    hot_class: np.ndarray
    logits: np.ndarray


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row maximum for stability."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def kth_most_similar(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The k-th highest-scoring class other than the label (k = 1 is the most similar)."""
    order = np.argsort(-logits, axis=1, kind="stable")
    others = order[order != labels[:, None]].reshape(len(labels), -1)
    if not 1 <= k <= others.shape[1]:
        raise ValueError(f"hot class rank k must be in 1..{others.shape[1]}, got {k}")
    return others[:, k - 1]


def loss_seed(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """dJ/dh for softmax cross-entropy: softmax(h) - onehot(y) (the FGS / FGV seed)."""
    seed = softmax(logits.astype(np.float64))
    seed[np.arange(len(labels)), labels] -= 1.0
    return seed


def hot_cold_seed(logits: np.ndarray, labels: np.ndarray, hot: np.ndarray) -> np.ndarray:
    """omega_hc of Eq. 7: |h_t| at the hot class t, -h_y at the cold class y, 0 elsewhere."""
    rows = np.arange(len(labels))
    omega = np.zeros(logits.shape, np.float64)
    omega[rows, hot] = np.abs(logits[rows, hot])
    omega[rows, labels] = -logits[rows, labels]
    return omega


def compute_directions(
    classifier: Classifier,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    methods: Sequence[Method],
) -> Directions:
    """Directions of ``methods`` for every image, batched through B_l.

    Scaled methods (hard positives) share the direction of their unscaled
    name; pass each direction once (``{m.direction for m in methods}``).
    """
    labels = np.asarray(labels, np.int64)
    images = classifier.check_images(images)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= classifier.num_classes):
        raise ValueError(f"labels must lie in 0..{classifier.num_classes - 1}")
    methods = tuple(methods)
    ranks = sorted({m.k for m in methods if m.is_hot_cold})
    need_loss = any(not m.is_hot_cold for m in methods)
    n = len(images)
    logits = np.empty((n, classifier.num_classes), np.float32)
    hot = {k: np.empty(n, np.int64) for k in ranks}

    def flat(values: np.ndarray) -> np.ndarray:
        return values.reshape(len(values), -1)

    def record_logits(values: np.ndarray, rows: slice) -> np.ndarray:
        logits[rows] = flat(values)
        return loss_seed(flat(values), labels[rows]).reshape(values.shape)

    def hc_seed(k: int):
        def seed(values: np.ndarray, rows: slice) -> np.ndarray:
            logits[rows] = flat(values)
            hot[k][rows] = kth_most_similar(flat(values), labels[rows], k)
            return hot_cold_seed(flat(values), labels[rows], hot[k][rows]).reshape(values.shape)
        return seed

    keys = (["loss"] if need_loss else []) + ranks
    seeds = [record_logits if key == "loss" else hc_seed(key) for key in keys]
    grads = classifier.backprop_many(images, classifier.logits_blob, seeds)

    eta = np.empty((len(methods),) + grads.shape[1:], np.float64)
    hot_class = np.full((len(methods), n), -1, np.int64)
    for i, m in enumerate(methods):
        raw = grads[keys.index(m.k if m.is_hot_cold else "loss")]
        eta[i] = np.sign(raw) if m.uses_sign else raw
        if m.is_hot_cold:
            hot_class[i] = hot[m.k]
    axes = tuple(range(2, eta.ndim))
    peak = np.abs(eta).max(axis=axes)
    valid = peak > 0
    eta /= np.where(valid, peak, 1.0).reshape(peak.shape + (1,) * len(axes))
    return Directions(methods, eta, valid, hot_class, logits)
