"""Minimal adversarials along a direction, and hard positives beyond them (Sec. 4.3).

Along a normalized direction eta_hat (max |eta_hat| = 1 pixel level), the
candidates are discrete images (the paper: "all images we generate have
discrete pixel-values in [0, 255]")

    x(eps) = clip(floor(x + eps * eta_hat + 1/2), 0, 255)            (uint8)

so eps is the L-infinity size of the perturbation before rounding. x(eps) is
piecewise constant: it changes only at the breakpoints where some pixel's
rounding flips. A *candidate* is one of these distinct images, named by the
midpoint of its eps interval (``candidate(x, eta_hat, eps*)`` reproduces it).

The search (Sec. 4.3: "a line search with growing steps plus binary search"):

1. **Line search with growing steps** until f(x(eps)) != y: eps = eps_0,
   then each try a step further, the step growing by ``growth``; up to
   ``max_eps``, beyond which the direction has no adversarial.
2. **Binary search** between the last non-adversarial and the first
   adversarial candidate, until the two are *adjacent* candidates: x(eps*) is
   adversarial and the candidate just below it is still classified y.

With ``strategy="secant"`` (the default) both phases use what the net already
reports: the logit margin m(eps) = h_y - max_{j != y} h_j along the ray, which
is nearly piecewise linear for ReLU nets (and mostly convex).

* Before a bracket exists, the secant of the last two margins predicts where m
  crosses 0, and the try goes 5 % beyond the prediction (a secant from two
  points before a convex crossing falls short of it); the prediction may jump
  further than a growing step would. Without a usable prediction (the first
  try, or a margin that does not fall) the growing step is taken.
* Inside a bracket each round classifies one candidate: at the secant of the
  last two tries when it falls inside the bracket, else at the Illinois
  regula falsi point of the bracket's margins. After 8 rounds in a row inside
  one bracket, bisection takes over, so the worst case stays logarithmic.

Measured on LeNet / MNIST (``benchmarks/bench_search.py``, docs/generation.md):
about 4 candidates per minimal adversarial for sign directions and 7-8 for
raw-gradient ones, against 10 and 20 for the growing steps plus bisection.

Every job stops only on two adjacent, classified candidates, whatever the
strategy. All (image, direction) jobs advance together: each round classifies
every active job's candidate in one batched call of the classifier.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hotcold.core.classifier import Classifier

STRATEGIES = ("secant", "bisect")
_OVERSHOOT = 1.05
"""A secant prediction outside the bracket is extended by this factor of its distance (see _round)."""
_MISSES_BEFORE_BISECTION = 8
"""Predictions in a row that may miss inside a bracket before bisection steps take over."""
_BLOCK = 1 << 22
"""Elements (jobs x pixels) per block of the breakpoint arithmetic: bounds its memory."""


@dataclass(frozen=True)
class SearchSettings:
    """Line-search parameters (Sec. 4.3 leaves their values open).

    Attributes
    ----------
    initial_eps:
        First eps tried, in pixel levels (no pixel changes below 0.5).
    initial_step:
        First step of the growing line search.
    growth:
        Factor by which each step exceeds the previous one (>= 1).
    max_eps:
        Largest eps tried; beyond it a direction has no adversarial. 255 is the
        full pixel range along the strongest component of eta_hat.
    strategy:
        ``"secant"``: margin-predicted tries (default). ``"bisect"``: the
        growing steps and a binary search only. Both end on two adjacent
        candidates, the lower classified y and the upper not.
    """

    initial_eps: float = 16.0
    initial_step: float = 1.0
    growth: float = 2.0
    max_eps: float = 255.0
    strategy: str = "secant"

    def __post_init__(self) -> None:
        values = (self.initial_eps, self.initial_step, self.growth, self.max_eps)
        if not all(isinstance(v, (int, float)) and np.isfinite(v) for v in values):
            raise ValueError(f"search settings must be finite numbers, got {values}")
        if not 0 < self.initial_eps <= self.max_eps:
            raise ValueError(f"need 0 < initial_eps <= max_eps, got {self.initial_eps}, {self.max_eps}")
        if self.initial_step <= 0:
            raise ValueError(f"initial_step must be > 0, got {self.initial_step}")
        if self.growth < 1:
            raise ValueError(f"growth must be >= 1, got {self.growth}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")


    @classmethod
    def capped(cls, max_eps: float, **settings) -> SearchSettings:
        """Settings with this cap, the first try lowered to it when the default lies beyond."""
        return cls(max_eps=max_eps, initial_eps=min(cls.initial_eps, max_eps), **settings)


@dataclass(frozen=True)
class SearchResult:
    """Outcome for ``J`` (image, direction) jobs.

    Attributes
    ----------
    found:
        ``J`` bool: an adversarial exists along the direction within ``max_eps``.
    eps:
        ``J`` float: eps* of the minimal adversarial, the midpoint of its
        candidate's eps interval within [0, max_eps] (NaN where not found).
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


def interval(x: np.ndarray, eta_hat: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The breakpoints around each job's eps: (last one <= eps, first one > eps), +-inf where none.

    ``x`` and ``eta_hat`` are ``J x ...``, ``eps`` is ``J``. The candidate x(eps)
    is the same image on the whole interval. Vectorized over jobs and pixels.
    """
    return _interval(*_rays(x, eta_hat), np.asarray(eps, np.float64))


def _rays(x: np.ndarray, eta_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each job's pixels as rising rays: (x' + 1/2, |d|, 1/|d| or 0), J x P.

    A falling pixel (d < 0) is mirrored, x' = 255 - x: its breakpoints are the
    same eps values, and every pixel then crosses m = 1..255 upwards at
    e(m) = (m - x' - 1/2) / |d|.
    """
    jobs, pixels = len(x), int(np.prod(np.shape(x)[1:], dtype=np.int64))
    x = np.asarray(x, np.float64).reshape(jobs, pixels)
    d = np.asarray(eta_hat, np.float64).reshape(jobs, pixels)
    start = np.where(d < 0, 255.0 - x, x) + 0.5
    speed = np.abs(d)
    inverse = np.divide(1.0, speed, out=np.zeros_like(speed), where=speed > 0)
    return start, speed, inverse


def _interval(start: np.ndarray, speed: np.ndarray, inverse: np.ndarray,
              eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    below, above = np.empty(len(eps)), np.empty(len(eps))
    step = max(1, _BLOCK // max(start.shape[1], 1))
    for first in range(0, len(eps), step):
        rows = slice(first, first + step)
        e, s0, sp, inv = eps[rows, None], start[rows], speed[rows], inverse[rows]
        # The last integer crossed: floor(x' + 1/2 + eps |d|), corrected by one where rounding put it on the
        # wrong side; e(m) itself is compared with eps, so a query exactly at a breakpoint is answered exactly.
        m = np.floor(s0 + e * sp)
        m -= (m - s0) * inv > e
        m += (m + 1 - s0) * inv <= e
        moving = inv > 0
        below[rows] = np.where(moving & (m >= 1), (np.minimum(m, 255.0) - s0) * inv, -np.inf).max(
            axis=1, initial=-np.inf)
        above[rows] = np.where(moving & (m <= 254), (m + 1 - s0) * inv, np.inf).min(axis=1, initial=np.inf)
    return below, above


def _name(below: np.ndarray, above: np.ndarray, max_eps: float) -> np.ndarray:
    """The eps that names a candidate: the midpoint of its eps interval within [0, max_eps]."""
    return (np.maximum(below, 0.0) + np.minimum(above, max_eps)) / 2


def _margin(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """m = h_y - max_{j != y} h_j: positive while f(x) = y (up to ties, which argmax decides)."""
    rows = np.arange(len(labels))
    own = logits[rows, labels].astype(np.float64)
    others = logits.astype(np.float64).copy()
    others[rows, labels] = -np.inf
    return own - others.max(axis=1)


def line_search(
    classifier: Classifier,
    x: np.ndarray,
    eta_hat: np.ndarray,
    labels: np.ndarray,
    settings: SearchSettings = SearchSettings(),
    *,
    logits: np.ndarray | None = None,
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
    settings:
        Steps, cap and strategy.
    logits:
        ``J x K`` logits h(x) of the originals, when the caller has them (the
        secant strategy starts from their margin); otherwise one batched
        forward pass computes them, counted in ``evaluations``.
    """
    x = classifier.check_images(x)
    labels = np.asarray(labels, np.int64)
    jobs = len(x)
    if eta_hat.shape != x.shape or labels.shape != (jobs,):
        raise ValueError(f"x {x.shape}, eta_hat {eta_hat.shape} and labels {labels.shape} must agree")
    return _Search(classifier, x, eta_hat, labels, settings, logits).run()


class _Search:
    """The state of every job, advanced in batched rounds (one classifier call per round)."""

    def __init__(self, classifier, x, eta_hat, labels, settings: SearchSettings, logits) -> None:
        self.clf, self.x, self.eta, self.y, self.s = classifier, x, eta_hat, labels, settings
        self.xf = x.astype(np.float64)
        n = len(x)
        self.rays = _rays(x, eta_hat)
        self.evaluations = np.zeros(n, np.int64)
        self.predicted = np.full(n, -1, np.int64)
        moving = np.abs(eta_hat.reshape(n, -1)).max(axis=1, initial=0) > 0 if n else np.zeros(0, bool)
        self.secant = settings.strategy == "secant"
        # The bracket: lo is a candidate classified y, hi one that is not (inf: none found yet).
        self.lo = np.zeros(n)
        self.lo_below, self.lo_above = self._interval(np.arange(n), self.lo)
        self.hi = np.full(n, np.inf)
        self.hi_below = np.full(n, np.inf)
        self.m_lo = np.full(n, np.nan)
        self.m_hi = np.full(n, np.nan)
        self.m_prev = np.full(n, np.nan)  # margin at the candidate before lo (secant while bracketing)
        self.prev = np.full(n, np.nan)
        self.step = np.full(n, settings.initial_step)
        self.missed = np.zeros(n, np.int64)  # rounds inside the bracket so far
        # Illinois weights of the bracket's margins: an end kept twice in a row has its margin halved.
        self.w_lo, self.w_hi = np.ones(n), np.ones(n)
        self.last_side = np.zeros(n, np.int8)  # +1: lo moved last round, -1: hi moved
        # The last two rounds' tries (eps, margin): the secant through them predicts best near the crossing.
        self.r1 = np.full(n, np.nan)
        self.m1 = np.full(n, np.nan)
        self.r2 = np.full(n, np.nan)
        self.m2 = np.full(n, np.nan)
        self.active = moving.copy()
        self.found = np.zeros(n, bool)
        if self.secant and self.active.any():
            idx = np.flatnonzero(self.active)
            if logits is None:
                logits = np.empty((n, classifier.num_classes))
                logits[idx] = classifier.predict(x[idx])
                self.evaluations[idx] += 1
            self.m_lo[idx] = _margin(np.asarray(logits)[idx], labels[idx])

    def _interval(self, jobs: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        start, speed, inverse = self.rays
        return _interval(start[jobs], speed[jobs], inverse[jobs], eps)

    # -- one round ------------------------------------------------------------------------------------
    def run(self) -> SearchResult:
        first = True
        while self.active.any():
            self._round(first)
            first = False
        eps = np.where(self.found, self.hi, np.nan)
        images = self.x.copy()
        idx = np.flatnonzero(self.found)
        images[idx] = candidate(self.xf[idx], self.eta[idx], self.hi[idx])
        return SearchResult(self.found, eps, images, self.predicted, self.evaluations)

    def _round(self, first: bool) -> None:
        s = self.s
        idx = np.flatnonzero(self.active)
        bracketed = np.isfinite(self.hi[idx])
        # Jobs whose bracket is down to two adjacent candidates are done.
        adjacent = bracketed & (self.lo_above[idx] >= self.hi_below[idx])
        self.found[idx[adjacent]] = True
        self.active[idx[adjacent]] = False
        idx, bracketed = idx[~adjacent], bracketed[~adjacent]
        if not idx.size:
            return
        lo = self.lo[idx]
        target = np.empty(idx.size)

        # Outside a bracket: a growing step, or a little beyond where the secant of the last two margins
        # crosses 0 (a secant from two points before a convex crossing falls short of it).
        grow = ~bracketed
        if grow.any():
            g = idx[grow]
            reach = np.full(g.size, s.initial_eps) if first else lo[grow] + self.step[g]
            guess = reach
            if self.secant and not first:
                with np.errstate(divide="ignore", invalid="ignore"):
                    slope = (self.m_lo[g] - self.m_prev[g]) / (lo[grow] - self.prev[g])
                    predicted = lo[grow] + self.m_lo[g] / -slope
                usable = np.isfinite(predicted) & (slope < 0)
                beyond = lo[grow] + _OVERSHOOT * (predicted - lo[grow])
                guess = np.where(usable, np.maximum(beyond, lo[grow]), reach)
            target[grow] = np.minimum(guess, s.max_eps)
            if not first:
                self.step[g] *= s.growth

        # Inside a bracket: the secant of the last two tries if it falls inside, else Illinois regula falsi;
        # bisection after _MISSES_BEFORE_BISECTION rounds in this bracket.
        inside = bracketed
        if inside.any():
            b = idx[inside]
            mid = (self.lo[b] + self.hi[b]) / 2
            if self.secant:
                m_lo, m_hi = self.w_lo[b] * self.m_lo[b], self.w_hi[b] * self.m_hi[b]
                with np.errstate(divide="ignore", invalid="ignore"):
                    falsi = self.lo[b] + (self.hi[b] - self.lo[b]) * m_lo / (m_lo - m_hi)
                    secant = self.r1[b] - self.m1[b] * (self.r1[b] - self.r2[b]) / (self.m1[b] - self.m2[b])
                inner = np.isfinite(secant) & (secant > self.lo[b]) & (secant < self.hi[b])
                falsi = np.where(inner, secant, falsi)
                use = np.isfinite(falsi) & (self.missed[b] < _MISSES_BEFORE_BISECTION)
                target[inside] = np.where(use, falsi, mid)
            else:
                target[inside] = mid

        # The candidate at the target, kept strictly above lo and below hi.
        below, above = self._interval(idx, target)
        at_lo = below <= self.lo_below[idx]
        last = at_lo & (self.lo_above[idx] > s.max_eps)
        if last.any():  # lo is the last candidate within max_eps: no adversarial along this direction
            self.active[idx[last]] = False
            keep = ~last
            idx, bracketed, below, above, at_lo = idx[keep], bracketed[keep], below[keep], above[keep], at_lo[keep]
            if not idx.size:
                return
        if at_lo.any():  # the target fell into lo's candidate: take the next one up
            below[at_lo], above[at_lo] = self._interval(idx[at_lo], self.lo_above[idx[at_lo]])
        too_high = np.isfinite(self.hi[idx]) & (below >= self.hi_below[idx])
        if too_high.any():  # it fell into hi's candidate: take the one just below hi
            prev_b, _ = self._interval(idx[too_high], np.nextafter(self.hi_below[idx[too_high]], -np.inf))
            below[too_high], above[too_high] = prev_b, self.hi_below[idx[too_high]]
        eps = _name(below, above, s.max_eps)
        capped = above > s.max_eps  # the last candidate within max_eps

        # One batched classification of every job's candidate.
        logits = self.clf.predict(candidate(self.xf[idx], self.eta[idx], eps))
        self.evaluations[idx] += 1
        labels_now = logits.argmax(axis=1)
        adv = labels_now != self.y[idx]
        margin = _margin(logits, self.y[idx])
        self.r2[idx], self.m2[idx] = self.r1[idx], self.m1[idx]
        self.r1[idx], self.m1[idx] = eps, margin
        self._set_hi(idx[adv], eps[adv], below[adv], margin[adv], labels_now[adv])
        self._set_lo(idx[~adv], eps[~adv], below[~adv], above[~adv], margin[~adv])
        self.missed[idx[bracketed]] += 1
        # Capped: the last candidate within max_eps is still y.
        self.active[idx[~adv & capped & ~bracketed]] = False

    def _set_hi(self, j, eps, below, margin, label) -> None:
        self.hi[j], self.hi_below[j], self.m_hi[j], self.predicted[j] = eps, below, margin, label
        self.w_hi[j] = 1.0
        self.w_lo[j] = np.where(self.last_side[j] == -1, self.w_lo[j] / 2, self.w_lo[j])
        self.last_side[j] = -1

    def _set_lo(self, j, eps, below, above, margin) -> None:
        self.prev[j], self.m_prev[j] = self.lo[j], self.m_lo[j]
        self.lo[j], self.lo_below[j], self.lo_above[j], self.m_lo[j] = eps, below, above, margin
        self.w_lo[j] = 1.0
        self.w_hi[j] = np.where(self.last_side[j] == 1, self.w_hi[j] / 2, self.w_hi[j])
        self.last_side[j] = 1


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
