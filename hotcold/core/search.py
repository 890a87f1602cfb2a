"""Minimal adversarials along a direction, and hard positives beyond them (Sec. 4.3).

Along a normalized direction eta_hat (max |eta_hat| = 1 pixel level), the
candidates are discrete images (the paper: "all images we generate have
discrete pixel-values in [0, 255]")

    x(eps) = clip(floor(x + eps * eta_hat + 1/2), 0, 255)            (uint8)

so eps is the L-infinity size of the perturbation before rounding. The search:

1. **Line search with increasing steps.** eps = eps_0, eps_0 + s, eps_0 + s + s*g,
   ... (step s growing by the factor g) until f(x(eps)) != y, or until
   ``max_eps``: then there is no adversarial along this direction.
2. **Binary search** in the last interval (lo, hi]. x(eps) is piecewise
   constant in eps and changes only where some pixel's rounding flips; the
   search runs over those distinct images, so it ends with two *adjacent*
   candidates: x(eps*) is adversarial and the candidate one step below it is
   still classified y. eps* is reported as the midpoint of the eps interval
   that produces x(eps*), so ``candidate(x, eta_hat, eps*)`` reproduces it.

Hard positives (Sec. 4, 5.2) scale the same direction beyond the minimum:
x(s * eps*), s >= 1 (the paper uses 1.05 and 1.10).

All (image, direction) jobs advance together: each round classifies every
active job's candidate in one batched call of the classifier, and finished jobs leave.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hotcold.core.classifier import Classifier


@dataclass(frozen=True)
class SearchSettings:
    """Line-search parameters (Sec. 4.3 leaves their values open).

    Attributes
    ----------
    initial_eps:
        First eps tried, in pixel levels (no pixel changes below 0.5).
    initial_step:
        First step between tries.
    growth:
        Factor by which each step exceeds the previous one (>= 1).
    max_eps:
        Largest eps tried; beyond it a direction has no adversarial. 255 is the
        full pixel range along the strongest component of eta_hat.
    """

    initial_eps: float = 1.0
    initial_step: float = 1.0
    growth: float = 2.0
    max_eps: float = 255.0

    def __post_init__(self) -> None:
        if not 0 < self.initial_eps <= self.max_eps:
            raise ValueError(f"need 0 < initial_eps <= max_eps, got {self.initial_eps}, {self.max_eps}")
        if self.initial_step <= 0:
            raise ValueError(f"initial_step must be > 0, got {self.initial_step}")
        if self.growth < 1:
            raise ValueError(f"growth must be >= 1, got {self.growth}")


@dataclass(frozen=True)
class SearchResult:
    """Outcome for ``J`` (image, direction) jobs.

    Attributes
    ----------
    found:
        ``J`` bool: an adversarial exists along the direction within ``max_eps``.
    eps:
        ``J`` float: eps* of the minimal adversarial (NaN where not found).
    images:
        ``J x H x W[ x C]`` uint8 minimal adversarials (the original where not found).
    predicted:
        ``J`` int: f(x(eps*)) (-1 where not found).
    evaluations:
        ``J`` int: candidates classified for the job (its forward passes).
    """

    found: np.ndarray
    eps: np.ndarray
    images: np.ndarray
    predicted: np.ndarray
    evaluations: np.ndarray


def candidate(x: np.ndarray, eta_hat: np.ndarray, eps: np.ndarray | float) -> np.ndarray:
    """x(eps) = clip(floor(x + eps * eta_hat + 1/2), 0, 255) as uint8, batched over jobs."""
    eps = np.asarray(eps, np.float64)
    eps = eps.reshape(eps.shape + (1,) * (np.ndim(x) - eps.ndim))
    return np.clip(np.floor(x + eps * eta_hat + 0.5), 0, 255).astype(np.uint8)


def breakpoints(x: np.ndarray, eta_hat: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Sorted eps in (lo, hi) at which some pixel of x(eps) changes value.

    Pixel p changes when x_p + eps * d_p + 1/2 crosses an integer m, at
    eps = (m - 1/2 - x_p) / d_p; only crossings into 0..255 count (m in 1..255).
    """
    x = x.ravel().astype(np.float64)
    d = eta_hat.ravel()
    moving = d != 0
    x, d = x[moving], d[moving]
    a, b = x + 0.5 + lo * d, x + 0.5 + hi * d
    first = np.maximum(np.floor(np.minimum(a, b)) + 1, 1)
    last = np.minimum(np.ceil(np.maximum(a, b)) - 1, 255)
    count = np.maximum(last - first + 1, 0).astype(np.int64)
    pixel = np.repeat(np.arange(len(x)), count)
    offset = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)
    m = first[pixel] + offset
    eps = (m - 0.5 - x[pixel]) / d[pixel]
    return np.unique(eps[(eps > lo) & (eps < hi)])


def _levels(x: np.ndarray, eta_hat: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """One eps per distinct candidate image on [lo, hi]: lo, interval midpoints, hi."""
    cuts = breakpoints(x, eta_hat, lo, hi)
    return np.concatenate(([lo], (cuts[:-1] + cuts[1:]) / 2, [hi])) if len(cuts) else np.array([lo, hi])


def line_search(
    classifier: Classifier,
    x: np.ndarray,
    eta_hat: np.ndarray,
    labels: np.ndarray,
    settings: SearchSettings = SearchSettings(),
) -> SearchResult:
    """Find the minimal adversarial along each job's direction (Sec. 4.3).

    Parameters
    ----------
    classifier:
        The network f.
    x:
        ``J x H x W[ x C]`` uint8 originals, each classified as its label.
    eta_hat:
        ``J x H x W[ x C]`` directions with max |eta_hat| = 1 (zero directions
        are reported as not found without any forward pass).
    labels:
        ``J`` labels y.
    """
    x = classifier.check_images(x)
    labels = np.asarray(labels, np.int64)
    jobs = len(x)
    if eta_hat.shape != x.shape or labels.shape != (jobs,):
        raise ValueError(f"x {x.shape}, eta_hat {eta_hat.shape} and labels {labels.shape} must agree")
    evaluations = np.zeros(jobs, np.int64)

    predicted = np.full(jobs, -1, np.int64)

    def adversarial(idx: np.ndarray, eps: np.ndarray) -> np.ndarray:
        """Classify the jobs' candidates; keep the label of each adversarial one."""
        evaluations[idx] += 1
        labels_now = classifier.classify(candidate(x[idx].astype(np.float64), eta_hat[idx], eps))
        hit = labels_now != labels[idx]
        predicted[idx[hit]] = labels_now[hit]
        return hit

    # 1. line search with increasing steps
    lo = np.zeros(jobs)
    hi = np.full(jobs, np.nan)
    eps = np.full(jobs, settings.initial_eps)
    step = np.full(jobs, settings.initial_step)
    active = np.flatnonzero(np.abs(eta_hat.reshape(jobs, -1)).max(axis=1) > 0)
    while active.size:
        hit = adversarial(active, eps[active])
        hi[active[hit]] = eps[active[hit]]
        miss = active[~hit]
        lo[miss] = eps[miss]
        at_cap = eps[miss] >= settings.max_eps
        active = miss[~at_cap]
        eps[active] = np.minimum(eps[active] + step[active], settings.max_eps)
        step[active] *= settings.growth

    # 2. binary search over the distinct candidates in (lo, hi]
    found = ~np.isnan(hi)
    levels = {j: _levels(x[j].astype(np.float64), eta_hat[j], lo[j], hi[j]) for j in np.flatnonzero(found)}
    below = {j: 0 for j in levels}
    above = {j: len(v) - 1 for j, v in levels.items()}
    active = np.array([j for j in levels if above[j] - below[j] > 1], np.int64)
    while active.size:
        mid = np.array([(below[j] + above[j]) // 2 for j in active])
        hit = adversarial(active, np.array([levels[j][m] for j, m in zip(active, mid)]))
        for j, m, h in zip(active, mid, hit):
            if h:
                above[j] = m
            else:
                below[j] = m
        active = np.array([j for j in active if above[j] - below[j] > 1], np.int64)

    eps_star = np.full(jobs, np.nan)
    for j in levels:
        eps_star[j] = levels[j][above[j]]
    images = x.copy()
    idx = np.flatnonzero(found)
    images[idx] = candidate(x[idx].astype(np.float64), eta_hat[idx], eps_star[idx])
    return SearchResult(found, eps_star, images, predicted, evaluations)


def hard_positives(
    classifier: Classifier,
    x: np.ndarray,
    eta_hat: np.ndarray,
    eps_star: np.ndarray,
    scale: float | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """x(scale * eps*) and its predicted labels: hard positives beyond the minimum (Sec. 4).

    ``scale`` is one value or one per job, each >= 1 (the paper: 1.05, 1.10).

    Returns
    -------
    images, predicted:
        ``J x H x W[ x C]`` uint8 and ``J`` int, from one batched classification.
    """
    scale = np.asarray(scale, np.float64)
    if np.any(scale < 1):
        raise ValueError(f"hard-positive scale must be >= 1, got {scale.min()}")
    images = candidate(np.asarray(x, np.float64), eta_hat, scale * np.asarray(eps_star))
    return images, classifier.classify(images)
