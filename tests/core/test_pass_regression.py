"""PASS regression set: today's scores of fixed adversarial MNIST pairs must survive speed work.

Three subsets, uint8 throughout:

* ``mnist``: 450 real MNIST test digits, each paired with a perturbed copy made the way hotcold's line
  search makes candidates (``clip(floor(x + eps * eta_hat + 1/2), 0, 255)``, Sec. 4.3) along
  gradient-like directions, plus geometric changes, exact copies and degenerate images
  (:func:`regression_pairs`; drawn from ``numpy.random.default_rng((SEED, i))`` per pair).
* ``color``: 24 colour 224 x 224 x 3 pairs built from digits, the same way.
* ``lenet``: 400 real adversarials, the first 100 that FGS, FGV, HC-D-1 and HC-S-1 find for the
  correctly classified of the first 2,000 MNIST test digits, on the LeNet of ``hotcold run mnist_quick``
  (``runs/mnist_quick/train/base0/final.caffemodel``, MD5 ee32ece65e4635c89dca505af8833083). The
  adversarial images are stored (no Caffe needed), the originals are MNIST test images by index.

``data/pass_regression.npz`` holds, per pair, the PASS and ``converged`` of the implementation at
commit 30efdca (OpenCV's ECC with 300 iterations / epsilon 1e-8, scored pair by pair), and CRC-32s of
both images, which pin the recipe: if NumPy or OpenCV ever generate different pairs, the test says so
instead of comparing scores of different images. Written with (old implementation, not the current one)::

    git show 30efdca:hotcold/core/pass_measure.py > /tmp/pass_old.py
    HOTCOLD_MNIST_DIR=/path/to/mnist .venv/bin/python tests/core/test_pass_regression.py /tmp/pass_old.py \
        [runs/mnist_quick/train/base0/final.caffemodel]

(the weights regenerate the ``lenet`` adversarials with Caffe; without them the stored ones are kept).
The ``mnist`` and ``color`` scores were stored before the speed work began, the ``lenet`` ones when it
showed that real sign adversarials (FGS, HC-S) are harder for ECC than the synthetic ones; all come from
the old implementation.

Tolerance (issue #9): at least 99 % of the adversarial pairs of each subset within 1e-3 of the stored
score. The 10 ``other_digit`` pairs of ``mnist`` (an unrelated digit as x_adv) are a control, not
adversarial pairs: ECC between unrelated digits is chaotic, so even a float64 re-implementation of
OpenCV's own iteration with the old stopping rule moves 3 of them by more than 0.03. For them the test
asserts only that ECC still converges where it did; docs/pass.md gives all the figures.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "data" / "pass_regression.npz"
SEED = 9
TOLERANCE = 1e-3
MIN_FRACTION = 0.99

# (kind, number of pairs) of the MNIST set, in order; digit i of the test set is pair i.
MNIST_KINDS = [
    ("fgs", 80),  # sign of a gradient-like field on every pixel, eps 1..25
    ("fgs_sparse", 40),  # the same on a random 5-60 % of the pixels, eps 5..40
    ("fgv", 80),  # a gradient-like field, normalised to max 1, eps 10..120
    ("hot_cold", 60),  # a smoother field concentrated near the strokes, eps 20..100
    ("smooth", 40),  # a low-frequency field over the whole image, eps 10..60
    ("tiny", 30),  # +-1..3 levels on 1-20 pixels: the smallest minimal adversarials
    ("shift", 30),  # np.roll by up to 2 px in each direction
    ("rotate", 30),  # 1-6 degrees and 0.95-1.05 scale about the centre, bilinear
    ("shift_fgs", 20),  # a 1 px shift plus sign noise, eps 5..13
    ("copy", 20),  # x_adv == x
    ("other_digit", 10),  # an unrelated digit: the control of CONTROL_KINDS
    ("degenerate", 10),  # blank, constant or inverted images, blank originals
]
# Not adversarial pairs: excluded from the 1e-3 criterion (see the module docstring).
CONTROL_KINDS = {"other_digit"}
COLOR_KINDS = [("fgs", 6), ("fgv", 6), ("shift", 4), ("rotate", 4), ("copy", 2), ("smooth", 2)]


def _candidate(x: np.ndarray, eta_hat: np.ndarray, eps: float) -> np.ndarray:
    """hotcold.core.search.candidate: the line search's uint8 image at L-infinity size eps."""
    return np.clip(np.floor(x + eps * eta_hat + 0.5), 0, 255).astype(np.uint8)


def _gradient_like(x: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """A stand-in for a LeNet input gradient: blurred noise, strongest on and near the strokes."""
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, x.shape), (0, 0), sigma)
    near_strokes = cv2.GaussianBlur((x > 0).astype(np.float64), (0, 0), 2.0)
    field = noise * (0.25 + near_strokes / max(near_strokes.max(), 1e-12))
    return field / np.abs(field).max()


def _geometric(x: np.ndarray, degrees: float, scale: float) -> np.ndarray:
    height, width = x.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, scale)
    return cv2.warpAffine(x.astype(np.float64), matrix, (width, height), flags=cv2.INTER_LINEAR)


def _perturb(kind: str, x: np.ndarray, other: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(x_adv, x) of one pair of ``kind``; ``x`` is uint8, ``other`` an unrelated image."""
    xf = x.astype(np.float64)
    if kind == "fgs":
        return _candidate(xf, np.sign(_gradient_like(xf, rng, rng.uniform(0.6, 1.2))), rng.uniform(1, 25)), x
    if kind == "fgs_sparse":
        mask = rng.random(x.shape) < rng.uniform(0.05, 0.6)
        direction = np.sign(_gradient_like(xf, rng, rng.uniform(0.6, 1.2))) * mask
        return _candidate(xf, direction, rng.uniform(5, 40)), x
    if kind == "fgv":
        return _candidate(xf, _gradient_like(xf, rng, rng.uniform(0.6, 1.2)), rng.uniform(10, 120)), x
    if kind == "hot_cold":
        return _candidate(xf, _gradient_like(xf, rng, rng.uniform(1.5, 3.0)), rng.uniform(20, 100)), x
    if kind == "smooth":
        field = cv2.GaussianBlur(rng.normal(0.0, 1.0, x.shape), (0, 0), rng.uniform(3.0, 6.0))
        return _candidate(xf, field / np.abs(field).max(), rng.uniform(10, 60)), x
    if kind == "tiny":
        direction = np.zeros(x.shape)
        flat = direction.reshape(-1)
        flat[rng.choice(flat.size, int(rng.integers(1, 21)), replace=False)] = rng.choice([-1.0, 1.0])
        return _candidate(xf, direction, float(rng.integers(1, 4))), x
    if kind == "shift":
        dy, dx = 0, 0
        while dy == 0 and dx == 0:
            dy, dx = (int(v) for v in rng.integers(-2, 3, 2))
        return np.roll(x, (dy, dx), axis=(0, 1)), x
    if kind == "rotate":
        degrees = rng.uniform(1, 6) * rng.choice([-1.0, 1.0])
        return _candidate(_geometric(x, degrees, rng.uniform(0.95, 1.05)), np.zeros(x.shape), 0.0), x
    if kind == "shift_fgs":
        moved = np.roll(xf, tuple(int(v) for v in rng.choice([-1, 1], 2) * (rng.random(2) < 0.7)), axis=(0, 1))
        return _candidate(moved, np.sign(_gradient_like(xf, rng, 0.8)), rng.uniform(5, 13)), x
    if kind == "copy":
        return x.copy(), x
    if kind == "other_digit":
        return other.copy(), x
    if kind == "degenerate":
        variant = int(rng.integers(0, 5))
        if variant == 0:
            return np.zeros_like(x), x
        if variant == 1:
            return x.copy(), np.zeros_like(x)
        if variant == 2:
            return np.zeros_like(x), np.zeros_like(x)
        if variant == 3:
            return np.full_like(x, int(rng.integers(1, 255))), x
        return (255 - x).astype(np.uint8), x
    raise ValueError(f"unknown kind {kind!r}")


def _color_image(digits: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 224 x 224 x 3 uint8 image: three digits upscaled 8x as channels, over a smooth background."""
    channels = np.stack([cv2.resize(d.astype(np.float64), (224, 224), interpolation=cv2.INTER_CUBIC) for d in digits], -1)
    background = cv2.GaussianBlur(rng.normal(0.0, 1.0, (224, 224, 3)), (0, 0), 12.0)
    image = 0.7 * channels + 40.0 + 60.0 * background / np.abs(background).max()
    return np.clip(np.floor(image + 0.5), 0, 255).astype(np.uint8)


def _perturb_color(kind: str, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    xf = x.astype(np.float64)
    if kind in ("fgs", "fgv"):
        field = cv2.GaussianBlur(rng.normal(0.0, 1.0, x.shape), (0, 0), rng.uniform(0.8, 2.0))
        direction = np.sign(field) if kind == "fgs" else field / np.abs(field).max()
        return _candidate(xf, direction, rng.uniform(2, 12) if kind == "fgs" else rng.uniform(10, 40))
    if kind == "smooth":
        field = cv2.GaussianBlur(rng.normal(0.0, 1.0, x.shape), (0, 0), 20.0)
        return _candidate(xf, field / np.abs(field).max(), rng.uniform(10, 40))
    if kind == "shift":
        return np.roll(x, tuple(int(v) for v in rng.integers(-4, 5, 2)), axis=(0, 1))
    if kind == "rotate":
        return _candidate(_geometric(x, rng.uniform(-3, 3), 1.0), np.zeros(x.shape), 0.0)
    return x.copy()


def regression_pairs(
    test_images: np.ndarray, stored: dict[str, np.ndarray] | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """The fixed set: ``{"mnist": (x_advs, xs, kinds), "color": (...), "lenet": (...)}``, uint8.

    ``test_images`` are MNIST's test images; ``stored`` (the fixture's arrays, by default read from
    :data:`FIXTURE`) supplies the ``lenet`` adversarials.
    """
    kinds = [kind for kind, count in MNIST_KINDS for _ in range(count)]
    advs, origs = [], []
    for i, kind in enumerate(kinds):
        rng = np.random.default_rng((SEED, i))
        adv, orig = _perturb(kind, test_images[i], test_images[len(kinds) + i], rng)
        advs.append(adv)
        origs.append(orig)
    mnist = (np.stack(advs), np.stack(origs), kinds)

    color_kinds = [kind for kind, count in COLOR_KINDS for _ in range(count)]
    advs, origs = [], []
    start = 2 * len(kinds)
    for i, kind in enumerate(color_kinds):
        rng = np.random.default_rng((SEED, 1000 + i))
        x = _color_image(test_images[start + 3 * i : start + 3 * i + 3], rng)
        advs.append(_perturb_color(kind, x, rng))
        origs.append(x)
    if stored is None:
        with np.load(FIXTURE) as data:
            stored = {name: data[name] for name in ("lenet_adv", "lenet_index", "lenet_kinds")}
    lenet = (stored["lenet_adv"], test_images[stored["lenet_index"]], [str(k) for k in stored["lenet_kinds"]])
    return {"mnist": mnist, "color": (np.stack(advs), np.stack(origs), color_kinds), "lenet": lenet}


def _crc32(images: np.ndarray) -> np.ndarray:
    return np.array([zlib.crc32(np.ascontiguousarray(image).tobytes()) for image in images], dtype=np.uint32)


@pytest.fixture(scope="module")
def pairs() -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    from hotcold.data.mnist import MNIST_DIR_ENV, load_mnist

    if not os.environ.get(MNIST_DIR_ENV):
        pytest.skip(f"set {MNIST_DIR_ENV} to a folder with the four MNIST files to run the PASS regression set")
    with np.load(FIXTURE) as data:
        return regression_pairs(load_mnist().test_images, {name: data[name] for name in data.files})


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return {name: data[name] for name in data.files}


SUBSETS = ["mnist", "color", "lenet"]


@pytest.mark.parametrize("subset", SUBSETS)
def test_regression_pairs_are_the_stored_ones(pairs, stored, subset: str) -> None:
    advs, xs, kinds = pairs[subset]
    np.testing.assert_array_equal(stored[f"{subset}_kinds"], kinds)
    assert (_crc32(advs) == stored[f"{subset}_adv_crc32"]).all(), "the recipe no longer makes the stored x_adv"
    assert (_crc32(xs) == stored[f"{subset}_x_crc32"]).all(), "the recipe no longer makes the stored x"


def _deviation_report(deviation: np.ndarray, kinds: list[str]) -> str:
    kinds = np.asarray(kinds)
    lines = []
    for kind in dict.fromkeys(kinds):
        d = deviation[kinds == kind]
        lines.append(f"{kind}: {np.mean(d <= TOLERANCE):.3f} within {TOLERANCE:g}, max {d.max():.2e}")
    return "; ".join(lines)


@pytest.mark.parametrize("subset", SUBSETS)
def test_pass_scores_match_the_stored_ones(pairs, stored, subset: str) -> None:
    from hotcold.core.pass_measure import pass_scores

    advs, xs, kinds = pairs[subset]
    result = pass_scores(advs, xs, workers=2)
    deviation = np.abs(result.scores - stored[f"{subset}_scores"])
    adversarial = ~np.isin(kinds, sorted(CONTROL_KINDS))
    within = np.mean(deviation[adversarial] <= TOLERANCE)
    assert within >= MIN_FRACTION, (
        f"{within:.4f} of the adversarial pairs within {TOLERANCE:g}; {_deviation_report(deviation, kinds)}"
    )
    # Where ECC fails the score is the unaligned SSIM, so a changed verdict would show in the scores too;
    # checking it on its own keeps failures explainable. The control pairs keep their verdicts as well.
    np.testing.assert_array_equal(result.converged, stored[f"{subset}_converged"])
    assert np.all(np.abs(result.scores) <= 1.0)


@pytest.mark.parametrize("subset", SUBSETS)
def test_pass_scores_are_deterministic_whatever_the_worker_count(pairs, subset: str) -> None:
    from hotcold.core.pass_measure import pass_score, pass_scores

    advs, xs, _ = pairs[subset]
    one = pass_scores(advs, xs, workers=1)
    two = pass_scores(advs, xs, workers=2)
    np.testing.assert_array_equal(one.scores, two.scores)
    np.testing.assert_array_equal(one.converged, two.converged)
    np.testing.assert_array_equal(pass_scores(advs[::-1], xs[::-1], workers=3).scores, two.scores[::-1])
    for i in range(0, len(advs), max(1, len(advs) // 10)):
        assert pass_score(advs[i], xs[i]).score == two.scores[i]


# --- settings and workers, without MNIST ------------------------------------------------------------


def _smooth_pairs(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` smooth 28 x 28 uint8 images and FGS-like perturbed copies."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (count, 4, 4)).astype(np.float32)
    xs = np.stack([cv2.resize(c, (28, 28), interpolation=cv2.INTER_CUBIC) for c in coarse])
    xs = np.clip(xs, 0, 255).astype(np.uint8)
    signs = np.sign(rng.normal(size=xs.shape))
    return _candidate(xs.astype(np.float64), signs, 12.0), xs


def test_worker_processes_give_the_in_process_scores() -> None:
    from hotcold.core.pass_measure import pass_scores

    advs, xs = _smooth_pairs(400, seed=3)  # 400 x 28 x 28 pixels: enough for the process pool
    in_process = pass_scores(advs, xs, workers=1)
    pooled = pass_scores(advs, xs, workers=2)
    np.testing.assert_array_equal(pooled.scores, in_process.scores)
    np.testing.assert_array_equal(pooled.converged, in_process.converged)


def test_warp_tolerance_zero_keeps_opencvs_rules_only() -> None:
    from hotcold.core.pass_measure import DEFAULT_WARP_TOLERANCE, pass_scores

    advs, xs = _smooth_pairs(20, seed=4)
    default = pass_scores(advs, xs, workers=1)
    assert np.array_equal(pass_scores(advs, xs, workers=1, warp_tolerance=DEFAULT_WARP_TOLERANCE).scores, default.scores)
    exact_rules = pass_scores(advs, xs, workers=1, warp_tolerance=0.0)
    np.testing.assert_allclose(exact_rules.scores, default.scores, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        pytest.param({"warp_tolerance": -0.1}, "warp_tolerance must be a finite number", id="negative"),
        pytest.param({"warp_tolerance": float("nan")}, "warp_tolerance must be a finite number", id="nan"),
        pytest.param({"warp_tolerance": 0.01, "pyramid_levels": 1}, "pyramid_levels=1", id="opencv_level"),
    ],
)
def test_invalid_warp_tolerance_raises(settings: dict, match: str) -> None:
    from hotcold.core.pass_measure import pass_score

    image = np.zeros((28, 28))
    with pytest.raises(ValueError, match=match):
        pass_score(image, image, **settings)


def _lenet_adversarials(weights: str, test_images: np.ndarray, test_labels: np.ndarray) -> dict[str, np.ndarray]:
    """The ``lenet`` subset: the first 100 adversarials of FGS, FGV, HC-D-1 and HC-S-1 (Caffe needed)."""
    import hotcold
    from hotcold.core.directions import compute_directions
    from hotcold.core.methods import parse_methods
    from hotcold.core.search import line_search

    net = hotcold.load_model("lenet").classifier(weights, batch_size=1000)
    index = np.arange(2000)
    index = index[net.classify(test_images[index]) == test_labels[index]][:1000]
    x, y = test_images[index], test_labels[index].astype(np.int64)
    advs, sources, kinds = [], [], []
    for name in ("FGS", "FGV", "HC-D-1", "HC-S-1"):
        found = line_search(net, x, compute_directions(net, x, y, parse_methods(name)).eta_hat[0], y)
        first = np.flatnonzero(found.found)[:100]
        advs.append(found.images[first])
        sources.append(index[first])
        kinds += [name] * len(first)
    return {"lenet_adv": np.concatenate(advs), "lenet_index": np.concatenate(sources), "lenet_kinds": np.array(kinds)}


def _write_fixture(module_path: str, weights: str | None = None) -> None:
    """Score the set with the ``pass_measure`` module at ``module_path`` (pair by pair) and store it."""
    from hotcold.data.mnist import load_mnist

    spec = importlib.util.spec_from_file_location("pass_measure_reference", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    cv2.setNumThreads(1)
    mnist = load_mnist()
    if weights is not None:
        lenet = _lenet_adversarials(weights, mnist.test_images, mnist.test_labels)
    else:
        with np.load(FIXTURE) as data:
            lenet = {name: data[name] for name in ("lenet_adv", "lenet_index", "lenet_kinds")}
    arrays = dict(lenet)
    for subset, (advs, xs, kinds) in regression_pairs(mnist.test_images, lenet).items():
        results = [module.pass_score(adv, x) for adv, x in zip(advs, xs)]
        arrays[f"{subset}_scores"] = np.array([r.score for r in results], dtype=np.float64)
        arrays[f"{subset}_converged"] = np.array([r.converged for r in results], dtype=bool)
        arrays[f"{subset}_kinds"] = np.array(kinds)
        arrays[f"{subset}_adv_crc32"] = _crc32(advs)
        arrays[f"{subset}_x_crc32"] = _crc32(xs)
    FIXTURE.parent.mkdir(exist_ok=True)
    np.savez_compressed(FIXTURE, **arrays)


if __name__ == "__main__":
    _write_fixture(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
