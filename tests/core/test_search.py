"""Minimal adversarials along a direction and hard positives beyond them (Sec. 4.3) on a NumPy net.

The candidates along a ray are the discrete images x(eps) = clip(floor(x +
eps * eta_hat + 1/2), 0, 255); the expected values enumerate them by brute
force from :func:`~hotcold.core.search.breakpoints` and classify them all.
"""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.core.directions import compute_directions
from hotcold.core.methods import parse_methods
from hotcold.core.search import (
    STRATEGIES, SearchSettings, breakpoints, candidate, hard_positives, interval, line_search,
)

from .conftest import NumpyClassifier

METHODS = parse_methods(["FGS", "FGV", "HC-D-1", "HC-S-2"])

Jobs = tuple[np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture
def jobs(numpy_net: NumpyClassifier, correct_images) -> Jobs:
    """(x, eta_hat, y) for every (method, image) pair: 4 x 24 jobs."""
    images, labels = correct_images
    dirs = compute_directions(numpy_net, images, labels, METHODS)
    m, n = dirs.eta_hat.shape[:2]
    return np.tile(images, (m, 1, 1)), dirs.eta_hat.reshape((m * n,) + images.shape[1:]), np.tile(labels, m)


def ray(x: np.ndarray, eta: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """One eps per distinct candidate on (lo, hi) and the candidates: brute force along the ray."""
    cuts = breakpoints(x.astype(np.float64), eta, lo, hi)
    edges = np.concatenate(([lo], cuts, [hi]))
    eps = (edges[:-1] + edges[1:]) / 2
    images = candidate(np.broadcast_to(x.astype(np.float64), (len(eps),) + x.shape),
                       np.broadcast_to(eta, (len(eps),) + x.shape), eps)
    return eps, images


@pytest.fixture(params=STRATEGIES)
def settings(request) -> SearchSettings:
    """Default settings with each strategy: both must end on two adjacent candidates (Sec. 4.3)."""
    return SearchSettings(strategy=request.param)


def test_minimal_adversarial_is_adversarial_and_reproducible(numpy_net, jobs: Jobs, settings) -> None:
    """x(eps*) is classified != y, ``predicted`` is its label, and candidate(x, eta_hat, eps*) rebuilds it."""
    x, eta, y = jobs
    result = line_search(numpy_net, x, eta, y, settings)
    assert result.found.all()
    assert result.images.dtype == np.uint8 and result.images.shape == x.shape
    labels = numpy_net.classify(result.images)
    assert (labels != y).all()
    np.testing.assert_array_equal(result.predicted, labels)
    np.testing.assert_array_equal(candidate(x.astype(np.float64), eta, result.eps), result.images)
    assert (result.eps > 0).all() and (result.eps <= settings.max_eps).all()
    change = np.abs(result.images.astype(np.int64) - x).reshape(len(x), -1).max(axis=1)
    assert (change >= 1).all() and (change <= result.eps + 0.5).all()


def previous_candidate(x: np.ndarray, eta: np.ndarray, eps_star: float) -> np.ndarray:
    """The last candidate before x(eps*) along the ray that differs from it (brute force)."""
    eps, images = ray(x, eta, 0.0, eps_star)
    here = candidate(x.astype(np.float64), eta, eps_star)
    distinct = (images != here).reshape(len(eps), -1).any(axis=1)
    assert distinct.any()
    return images[np.flatnonzero(distinct)[-1]]


def test_candidate_one_step_below_eps_star_is_still_the_label(numpy_net, jobs: Jobs, settings) -> None:
    """The search ends on adjacent candidates: the distinct one just below x(eps*) is classified y."""
    x, eta, y = jobs
    result = line_search(numpy_net, x, eta, y, settings)
    previous = np.stack([previous_candidate(x[j], eta[j], result.eps[j]) for j in range(len(x))])
    np.testing.assert_array_equal(numpy_net.classify(previous), y)


def test_eps_star_names_the_middle_of_its_candidate_interval(numpy_net, jobs: Jobs, settings) -> None:
    """eps* is the midpoint of the eps interval on which x(eps) = x(eps*) (SearchResult.eps)."""
    x, eta, y = jobs
    result = line_search(numpy_net, x, eta, y, settings)
    below, above = interval(x.astype(np.float64), eta, result.eps)
    np.testing.assert_allclose(result.eps, (below + above) / 2, rtol=1e-12)


def test_whole_ray_below_eps_star_is_classified_as_the_label(numpy_net, jobs: Jobs) -> None:
    """On rays where f changes once (y, then never y again up to max_eps), x(eps*) is the first adversarial.

    Both strategies are exact on such rays, the large majority here (one job
    in four is enumerated); on them every candidate below eps* is y.
    """
    x, eta, y = (a[::4] for a in jobs)
    results = [line_search(numpy_net, x, eta, y, SearchSettings(strategy=s)) for s in STRATEGIES]
    checked = 0
    for j in range(len(x)):
        eps, images = ray(x[j], eta[j], 0.0, SearchSettings().max_eps)
        labels = numpy_net.logits_of(images).astype(np.float32).argmax(axis=1)
        adversarial = labels != y[j]
        first = int(np.argmax(adversarial))
        if not adversarial.any() or not adversarial[first:].all():
            continue
        checked += 1
        for result in results:
            same = np.flatnonzero((images == result.images[j]).reshape(len(images), -1).all(axis=1))
            assert len(same) == 1 and same[0] == first
            assert (labels[:first] == y[j]).all()
            assert result.predicted[j] == labels[first]
    assert checked >= 0.8 * len(x)


class MarginNet(NumpyClassifier):
    """Two classes on 4 x 4 images with a margin linear in the pixels: class 1 once ``score`` > 0."""

    def __init__(self, score) -> None:
        super().__init__((4, 4), num_classes=2)
        self.score = score

    def predict(self, images: np.ndarray) -> np.ndarray:
        images = self.check_images(images)
        self.forward_passes += 1
        self.images_classified += len(images)
        s = self.score(images.reshape(len(images), -1).astype(np.float64))
        return np.stack([np.zeros_like(s), s], axis=1).astype(np.float32)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_search_is_minimal_when_tried_eps_are_breakpoints(strategy: str) -> None:
    """FGS tried at eps = 0.5, 1.5, 2.5, all breakpoints: x(2.0) (102 / 98) is the first adversarial.

    x(1.5) is 102 / 99 and x(2.5) is 103 / 98: the candidate between two tried
    breakpoints must not be skipped.
    """
    net = MarginNet(lambda p: 98.5 - p[:, 8:].max(axis=1))
    x = np.full((1, 4, 4), 100, np.uint8)
    eta = np.ones((1, 4, 4))
    eta[:, 2:] = -1.0
    settings = SearchSettings(initial_eps=0.5, initial_step=1.0, growth=1.0, strategy=strategy)
    result = line_search(net, x, eta, np.array([0]), settings)
    assert result.found[0] and result.predicted[0] == 1
    np.testing.assert_array_equal(result.images[0, :2], 102)
    np.testing.assert_array_equal(result.images[0, 2:], 98)
    assert net.classify(previous_candidate(x[0], eta[0], result.eps[0])[None])[0] == 0


def test_not_found_within_a_tiny_max_eps(numpy_net, jobs: Jobs, settings) -> None:
    """Below eps = 1/2 no pixel rounds to a new value: nothing is found."""
    x, eta, y = jobs
    tiny = SearchSettings(initial_eps=0.4, initial_step=0.1, max_eps=0.4, strategy=settings.strategy)
    result = line_search(numpy_net, x, eta, y, tiny)
    assert not result.found.any()
    assert np.isnan(result.eps).all()
    np.testing.assert_array_equal(result.images, x)
    np.testing.assert_array_equal(result.predicted, -1)
    assert result.evaluations.sum() == numpy_net.images_classified
    assert (result.evaluations <= 1).all()


def test_max_eps_caps_the_search(numpy_net, jobs: Jobs, settings) -> None:
    """Jobs not found are still y at the last candidate within max_eps; found ones have eps* <= max_eps."""
    x, eta, y = jobs
    capped = SearchSettings(initial_eps=1.0, max_eps=6.0, strategy=settings.strategy)
    result = line_search(numpy_net, x, eta, y, capped)
    missed = ~result.found
    assert missed.any() and result.found.any()
    last = candidate(x[missed].astype(np.float64), eta[missed], 6.0)
    np.testing.assert_array_equal(numpy_net.classify(last), y[missed])
    assert (result.eps[result.found] <= 6.0).all()
    np.testing.assert_array_equal(result.images[missed], x[missed])
    np.testing.assert_array_equal(result.predicted[missed], -1)
    full = line_search(numpy_net, x, eta, y, settings)
    np.testing.assert_array_equal(result.images[result.found], full.images[result.found])
    assert (full.eps[missed] > 5.5).all()


def test_zero_direction_is_not_found_without_evaluations(numpy_net, jobs: Jobs, settings) -> None:
    """A zero eta_hat has no adversarial: found False, no forward pass; other jobs are unaffected."""
    x, eta, y = jobs
    eta = eta[:6].copy()
    eta[2] = 0.0
    result = line_search(numpy_net, x[:6], eta, y[:6], settings)
    assert not result.found[2] and np.isnan(result.eps[2])
    assert result.evaluations[2] == 0 and result.predicted[2] == -1
    np.testing.assert_array_equal(result.images[2], x[2])
    others = [0, 1, 3, 4, 5]
    alone = line_search(numpy_net, x[others], eta[others], y[others], settings)
    np.testing.assert_array_equal(result.images[others], alone.images)
    np.testing.assert_array_equal(result.evaluations[others], alone.evaluations)
    none = line_search(numpy_net, x[:2], np.zeros_like(eta[:2]), y[:2], settings)
    assert not none.found.any() and (none.evaluations == 0).all()


def test_jobs_are_independent_and_evaluations_are_counted_per_job(jobs: Jobs, settings) -> None:
    """Batched jobs give what each gives alone; ``evaluations`` sums to the images the net classified."""
    x, eta, y = jobs
    net = NumpyClassifier()
    result = line_search(net, x, eta, y, settings)
    assert net.images_classified == result.evaluations.sum()
    assert net.forward_passes < result.evaluations.sum()
    for j in range(0, len(x), 7):
        single = NumpyClassifier()
        alone = line_search(single, x[j:j + 1], eta[j:j + 1], y[j:j + 1], settings)
        assert single.images_classified == alone.evaluations[0] == result.evaluations[j]
        assert alone.eps[0] == result.eps[j]
        np.testing.assert_array_equal(alone.images[0], result.images[j])


def test_known_logits_save_one_evaluation(numpy_net, jobs: Jobs, settings) -> None:
    """Given the originals' logits, the secant search skips their forward pass; the result is the same."""
    x, eta, y = jobs
    plain = line_search(numpy_net, x, eta, y, settings)
    given = line_search(numpy_net, x, eta, y, settings, logits=numpy_net.logits_of(x).astype(np.float32))
    np.testing.assert_array_equal(given.images, plain.images)
    np.testing.assert_array_equal(given.eps, plain.eps)
    saved = 1 if settings.strategy == "secant" else 0
    np.testing.assert_array_equal(given.evaluations, plain.evaluations - saved)


@pytest.mark.parametrize(("flip", "tries"), [(3, [1, 2, 4, 3]), (37, [1, 2, 4, 8, 16, 32, 64, 48, 40, 36, 38, 37])])
def test_bisect_follows_the_growing_steps_then_halves(flip: int, tries: list[int]) -> None:
    """Bisect on a net that flips at +flip levels: eps = 1, 2, 4, ... until a hit, then a binary search (Sec. 4.3)."""
    seen: list[int] = []
    net = MarginNet(lambda p: p.sum(axis=1) - 16 * 50 - (16 * flip - 0.5))
    predict = net.predict
    net.predict = lambda images: (seen.extend((images[:, 0, 0].astype(int) - 50).tolist()), predict(images))[1]
    x = np.full((1, 4, 4), 50, np.uint8)
    eta = np.ones((1, 4, 4))
    result = line_search(net, x, eta, np.array([0]), SearchSettings(initial_eps=1.0, strategy="bisect"))
    assert result.found[0] and result.predicted[0] == 1
    np.testing.assert_array_equal(result.images[0], 50 + flip)
    assert result.eps[0] == flip
    assert seen == tries and result.evaluations[0] == len(tries)
    secant = line_search(net, x, eta, np.array([0]), SearchSettings(initial_eps=1.0))
    np.testing.assert_array_equal(secant.images, result.images)
    assert secant.eps[0] == flip and secant.evaluations[0] <= len(tries)


def test_interval_counts_breakpoints_of_clipped_pixels() -> None:
    """Pixel 50 along +1 clips at 255 from eps = 204.5 on: that breakpoint bounds every later interval.

    (An earlier interval() looked only at breakpoints next to the rounded
    value, missing those of clipped pixels.)
    """
    below, above = interval(np.array([[50.0, 0.0]]), np.array([[1.0, 0.05]]), np.array([209.0]))
    assert (below[0], above[0]) == (204.5, 210.0)
    below, above = interval(np.array([[50.0, 50.0]]), np.array([[1.0, 1.0]]), np.array([255.0]))
    assert (below[0], above[0]) == (204.5, np.inf)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_ray_without_adversarial_costs_only_the_growing_steps(strategy: str) -> None:
    """No adversarial up to max_eps: eps = 16, 17, 19, 23, 31, 47, 79, 143, 255 are all the tries needed.

    Past eps = 204.5 every pixel is clipped at 255; the search must not walk
    the remaining candidates one by one.
    """
    net = MarginNet(lambda p: -np.ones(len(p)))
    x = np.full((1, 4, 4), 50, np.uint8)
    result = line_search(net, x, np.ones((1, 4, 4)), np.array([0]), SearchSettings(strategy=strategy))
    assert not result.found[0]
    assert result.evaluations[0] <= 10


def test_hard_positives_scale_the_same_direction(numpy_net, jobs: Jobs) -> None:
    """x(s eps*), s >= 1 (Sec. 4): s = 1 is the minimal adversarial; larger s moves every pixel further."""
    x, eta, y = jobs
    result = line_search(numpy_net, x, eta, y)
    same, same_labels = hard_positives(numpy_net, x, eta, result.eps, 1.0)
    np.testing.assert_array_equal(same, result.images)
    np.testing.assert_array_equal(same_labels, result.predicted)

    far, far_labels = hard_positives(numpy_net, x, eta, result.eps, 1.1)
    np.testing.assert_array_equal(far_labels, numpy_net.classify(far))
    np.testing.assert_array_equal(far, candidate(x.astype(np.float64), eta, 1.1 * result.eps))
    sign = np.sign(eta)
    step_min = (result.images.astype(np.int64) - x) * sign
    step_far = (far.astype(np.int64) - x) * sign
    assert (step_min >= 0).all() and (step_far >= step_min).all()
    assert (step_far > step_min).reshape(len(x), -1).any(axis=1).mean() > 0.5
    np.testing.assert_array_equal(far[eta == 0], x[eta == 0])


def test_hard_positive_scales_per_job(numpy_net, jobs: Jobs) -> None:
    """One scale per job equals separate calls; a scale below 1 is refused."""
    x, eta, y = jobs
    x, eta, y = x[:8], eta[:8], y[:8]
    result = line_search(numpy_net, x, eta, y)
    scales = np.array([1.0, 1.05, 1.1, 2.0] * 2)
    images, labels = hard_positives(numpy_net, x, eta, result.eps, scales)
    for s in np.unique(scales):
        pick = scales == s
        alone, alone_labels = hard_positives(numpy_net, x[pick], eta[pick], result.eps[pick], s)
        np.testing.assert_array_equal(images[pick], alone)
        np.testing.assert_array_equal(labels[pick], alone_labels)
    with pytest.raises(ValueError, match=">= 1"):
        hard_positives(numpy_net, x, eta, result.eps, 0.99)
    with pytest.raises(ValueError, match=">= 1"):
        hard_positives(numpy_net, x, eta, result.eps, np.where(scales == 2.0, 0.5, scales))


def test_candidate_rounds_half_up_and_clips() -> None:
    """x(eps) = clip(floor(x + eps eta_hat + 1/2), 0, 255): discrete pixels in [0, 255] (Sec. 4.3)."""
    x = np.array([[0.0, 10.0, 250.0, 128.0]])
    eta = np.array([[-1.0, 0.5, 1.0, -0.25]])
    np.testing.assert_array_equal(candidate(x, eta, 1.0), [[0, 11, 251, 128]])
    np.testing.assert_array_equal(candidate(x, eta, 2.0), [[0, 11, 252, 128]])
    np.testing.assert_array_equal(candidate(x, eta, 3.0), [[0, 12, 253, 127]])
    np.testing.assert_array_equal(candidate(x, eta, 10.0), [[0, 15, 255, 126]])
    two = candidate(np.stack([x[0], x[0]]), np.stack([eta[0], eta[0]]), np.array([1.0, 10.0]))
    np.testing.assert_array_equal(two, [[0, 11, 251, 128], [0, 15, 255, 126]])
    assert two.dtype == np.uint8


def test_breakpoints_are_exactly_where_the_candidate_changes() -> None:
    """Between breakpoints x(eps) is constant; across each one it changes (dense sampling of the ray)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (3, 3)).astype(np.float64)
    x[0, 0], x[0, 1] = 0.0, 255.0
    eta = rng.uniform(-1, 1, (3, 3))
    eta[0, 0], eta[0, 1], eta[1, 1] = -0.7, 0.9, 0.0
    cuts = breakpoints(x, eta, 0.5, 40.0)
    assert (np.diff(cuts) > 0).all() and (cuts > 0.5).all() and (cuts < 40.0).all()
    grid = np.linspace(0.5, 40.0, 200001)[1:-1]
    images = candidate(np.broadcast_to(x, (len(grid), 3, 3)), np.broadcast_to(eta, (len(grid), 3, 3)), grid)
    changes = np.flatnonzero((images[1:] != images[:-1]).reshape(len(grid) - 1, -1).any(axis=1))
    # Every change on the grid lies next to a breakpoint, and every breakpoint shows up as a change.
    at = np.searchsorted(cuts, grid[changes])
    assert len(changes) == len(cuts)
    np.testing.assert_array_equal(at, np.arange(len(cuts)))
    for c in cuts:
        assert (candidate(x, eta, c - 1e-6) != candidate(x, eta, c + 1e-6)).any()


def test_interval_brackets_eps_between_breakpoints() -> None:
    """interval(): the last breakpoint <= eps and the first > eps, +-inf where none; exact at its own ends."""
    rng = np.random.default_rng(6)
    x = rng.integers(0, 256, (3, 4, 4)).astype(np.float64)
    eta = rng.uniform(-1, 1, (3, 4, 4))
    eta[:, 0, 0] = 1.0
    eta[2] = 0.0
    cuts = [breakpoints(x[j], eta[j], -1000.0, 1000.0) for j in range(2)]
    for eps in (0.2, 3.7, 40.0, 123.4):
        below, above = interval(x, eta, np.full(3, eps))
        for j in range(2):
            # interval() and breakpoints() may round the same breakpoint differently in the last bit.
            assert below[j] == pytest.approx(cuts[j][cuts[j] <= eps][-1], rel=1e-12)
            assert above[j] == pytest.approx(cuts[j][cuts[j] > eps][0], rel=1e-12)
        assert below[2] == -np.inf and above[2] == np.inf
        np.testing.assert_array_equal(candidate(x[:2], eta[:2], np.full(2, eps)),
                                      candidate(x[:2], eta[:2], (below[:2] + above[:2]) / 2))
        # Queried at its upper end, the next interval starts exactly there (the search steps this way).
        next_below, next_above = interval(x[:2], eta[:2], above[:2])
        np.testing.assert_array_equal(next_below, above[:2])
        assert (next_above > above[:2]).all()
        assert (candidate(x[:2], eta[:2], (next_below + next_above) / 2)
                != candidate(x[:2], eta[:2], (below[:2] + above[:2]) / 2)).reshape(2, -1).any(axis=1).all()


def test_bad_settings_and_shapes_raise(numpy_net, jobs: Jobs) -> None:
    """SearchSettings needs finite 0 < initial_eps <= max_eps, step > 0, growth >= 1, a known strategy."""
    for bad in (dict(initial_eps=0.0), dict(initial_eps=300.0), dict(initial_step=0.0), dict(growth=0.5),
                dict(max_eps=float("inf")), dict(strategy="newton")):
        with pytest.raises(ValueError):
            SearchSettings(**bad)
    x, eta, y = jobs
    with pytest.raises(ValueError, match="must agree"):
        line_search(numpy_net, x, eta[:-1], y)
    with pytest.raises(ValueError, match="must agree"):
        line_search(numpy_net, x, eta, y[:-1])
    with pytest.raises(TypeError):
        line_search(numpy_net, x.astype(np.float64), eta, y)


def test_no_jobs_and_a_small_cap(numpy_net, jobs: Jobs) -> None:
    """Zero jobs return empty results; a max_eps below the default first try lowers the first try."""
    x, eta, y = jobs
    empty = line_search(numpy_net, x[:0], eta[:0], y[:0])
    assert empty.found.shape == (0,) and empty.images.shape == (0,) + x.shape[1:]
    small = SearchSettings.capped(4.0)
    assert small.initial_eps == 4.0 and SearchSettings.capped(100.0).initial_eps == SearchSettings().initial_eps
    result = line_search(numpy_net, x, eta, y, small)
    assert (result.eps[result.found] <= 4.0).all()
