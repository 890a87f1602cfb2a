"""Directions FGS, FGV (Sec. 4.1, Eq. 6) and HC-D-k / HC-S-k (Sec. 4.2, Eq. 7) on a NumPy net.

Every direction is checked against central finite differences of the
objective it is the gradient of, computed from the net's float forward pass
alone, so neither B_l nor the seeds of :mod:`hotcold.core.directions` enter
the expected values.
"""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.core.classifier import Classifier
from hotcold.core.directions import compute_directions, hot_cold_seed, kth_most_similar, loss_seed, softmax
from hotcold.core.methods import Method, parse_methods

from .conftest import NumpyClassifier, correctly_classified

METHODS = parse_methods(["FGS", "FGV", "HC-D-1..3", "HC-S-1..2"])
STEP = 1e-3
"""Finite-difference step in pixel levels (the net is piecewise linear in the pixels)."""


def finite_difference(objective, image: np.ndarray) -> np.ndarray:
    """Central differences of a scalar ``objective(pixels N x H x W) -> N`` at one float image."""
    size = image.size
    basis = np.eye(size).reshape((size,) + image.shape) * STEP
    plus = objective(image[None] + basis)
    minus = objective(image[None] - basis)
    return ((plus - minus) / (2 * STEP)).reshape(image.shape)


def cross_entropy(net: NumpyClassifier, label: int):
    """J(theta, x, y) = -log softmax(h(x))_y as a function of float pixels."""
    def objective(pixels: np.ndarray) -> np.ndarray:
        h = net.logits_of(pixels)
        h = h - h.max(axis=1, keepdims=True)
        return np.log(np.exp(h).sum(axis=1)) - h[:, label]
    return objective


def hot_class_by_rank(logits: np.ndarray, label: int, k: int) -> int:
    """The k-th highest-scoring class other than ``label``, by a plain sort."""
    ranked = [c for c in sorted(range(len(logits)), key=lambda c: -logits[c]) if c != label]
    return ranked[k - 1]


def normalized(direction: np.ndarray) -> np.ndarray:
    return direction / np.abs(direction).max()


def test_numpy_classifier_backprop_is_the_input_gradient(numpy_net, correct_images) -> None:
    """The test double is a Classifier whose B_l (Sec. 4.3) is d(seed . h)/d(pixels), input scaling included."""
    images, _ = correct_images
    rng = np.random.default_rng(7)
    seed = rng.normal(size=(len(images), numpy_net.num_classes))
    # Array seeds are taken as float32, as Caffe's diff blobs; the callable returns float32 too.
    grads = numpy_net.backprop_many(images, "logits", [seed, lambda h, rows: 2 * seed[rows].astype(np.float32)])
    assert grads.shape == (2,) + images.shape and grads.dtype == np.float64
    for i in range(4):
        expected = finite_difference(lambda p: numpy_net.logits_of(p) @ seed[i], images[i].astype(np.float64))
        np.testing.assert_allclose(grads[0, i], expected, rtol=1e-5, atol=1e-10)
    np.testing.assert_allclose(grads[1], 2 * grads[0], rtol=1e-12)
    assert isinstance(numpy_net, Classifier)
    passes = numpy_net.forward_passes
    many = np.concatenate([images] * 6)  # 144 images: batches of 64, 64, 16
    np.testing.assert_array_equal(numpy_net.classify(many), np.tile(numpy_net.classify(images), 6))
    assert numpy_net.forward_passes == passes + 3 + 1
    with pytest.raises(ValueError, match="no blob"):
        numpy_net.backprop_many(images, "fc1", [seed])
    with pytest.raises(TypeError, match="uint8"):
        numpy_net.check_images(images.astype(np.float32))
    with pytest.raises(ValueError, match="shape"):
        numpy_net.check_images(images[:, :7])


def test_fgv_is_the_cross_entropy_gradient_and_fgs_its_sign(numpy_net, correct_images) -> None:
    """FGV: eta = grad_x J(theta, x, y) (Eq. 6), normalized to max |eta_hat| = 1; FGS: its sign."""
    images, labels = correct_images
    dirs = compute_directions(numpy_net, images, labels, [Method("FGS"), Method("FGV")])
    assert dirs.eta_hat.shape == (2,) + images.shape
    for i in range(len(images)):
        grad = finite_difference(cross_entropy(numpy_net, labels[i]), images[i].astype(np.float64))
        np.testing.assert_allclose(dirs.eta_hat[1, i], normalized(grad), atol=1e-6)
        clear = np.abs(grad) > 1e-6 * np.abs(grad).max()
        assert clear.mean() > 0.9
        np.testing.assert_array_equal(dirs.eta_hat[0, i][clear], np.sign(grad)[clear])
    np.testing.assert_array_equal(np.unique(dirs.eta_hat[0]), [-1.0, 1.0])


def test_fgv_increases_the_loss(numpy_net, correct_images) -> None:
    """Stepping along FGV (and FGS) raises J for every image: they point uphill (Sec. 4.1)."""
    images, labels = correct_images
    dirs = compute_directions(numpy_net, images, labels, [Method("FGS"), Method("FGV")])
    for m in range(2):
        for i in range(len(images)):
            loss = cross_entropy(numpy_net, labels[i])
            x = images[i].astype(np.float64)
            assert loss((x + 0.5 * dirs.eta_hat[m, i])[None])[0] > loss(x[None])[0]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_hot_cold_direction_is_the_gradient_of_the_eq7_objective(numpy_net, correct_images, k: int) -> None:
    """HC-D-k: eta = B_l(omega_hc) with omega_hc of Eq. 7; HC-S-k its sign (k <= 2 here)."""
    images, labels = correct_images
    methods = [Method("HC-D", k), Method("HC-S", k)]
    dirs = compute_directions(numpy_net, images, labels, methods)
    logits = numpy_net.logits_of(images)
    for i in range(len(images)):
        y = labels[i]
        t = hot_class_by_rank(logits[i], y, k)
        assert dirs.hot_class[0, i] == dirs.hot_class[1, i] == t
        omega = np.zeros(numpy_net.num_classes)
        omega[t] = abs(logits[i, t])
        omega[y] = -logits[i, y]
        grad = finite_difference(lambda p: numpy_net.logits_of(p) @ omega, images[i].astype(np.float64))
        np.testing.assert_allclose(dirs.eta_hat[0, i], normalized(grad), atol=1e-5)
        clear = np.abs(grad) > 1e-5 * np.abs(grad).max()
        np.testing.assert_array_equal(dirs.eta_hat[1, i][clear], np.sign(grad)[clear])


def test_hot_class_ranks_and_eq7_seed() -> None:
    """k-th most similar class excludes y; omega_hc is |h_t| at t, -h_y at y, 0 elsewhere (Eq. 7)."""
    logits = np.array([[1.0, 5.0, -3.0, 2.0], [0.5, -1.0, 2.0, 4.0], [-2.0, -1.0, -4.0, -3.0]])
    labels = np.array([1, 3, 1])
    np.testing.assert_array_equal(kth_most_similar(logits, labels, 1), [3, 2, 0])
    np.testing.assert_array_equal(kth_most_similar(logits, labels, 2), [0, 0, 3])
    np.testing.assert_array_equal(kth_most_similar(logits, labels, 3), [2, 1, 2])
    omega = hot_cold_seed(logits, labels, np.array([2, 1, 0]))
    np.testing.assert_array_equal(omega, [[0, -5, 3, 0], [0, 1, 0, -4], [2, 1, 0, 0]])
    with pytest.raises(ValueError, match="1..3"):
        kth_most_similar(logits, labels, 4)
    with pytest.raises(ValueError, match="1..3"):
        kth_most_similar(logits, labels, 0)


def test_loss_seed_is_softmax_minus_onehot() -> None:
    """dJ/dh = softmax(h) - onehot(y), checked by finite differences of J in h (Eq. 6's seed)."""
    logits = np.array([[1.0, 5.0, -3.0, 2.0], [700.0, 699.0, 0.0, -5.0]])
    labels = np.array([2, 0])
    seed = loss_seed(logits, labels)
    np.testing.assert_allclose(seed.sum(axis=1), 0.0, atol=1e-12)
    assert np.isfinite(softmax(logits)).all()
    for n in range(2):
        def loss(h: np.ndarray) -> float:
            z = h - h.max()
            return float(np.log(np.exp(z).sum()) - z[labels[n]])
        fd = [(loss(logits[n] + e * 1e-6) - loss(logits[n] - e * 1e-6)) / 2e-6 for e in np.eye(4)]
        np.testing.assert_allclose(seed[n], fd, atol=1e-6)


def test_directions_are_normalized_and_hot_class_is_minus_one_for_gradient_methods(numpy_net, correct_images) -> None:
    """max |eta_hat| = 1 per valid direction (the search's pixel units); hot_class -1 for FGS / FGV."""
    images, labels = correct_images
    dirs = compute_directions(numpy_net, images, labels, METHODS)
    assert dirs.methods == METHODS
    assert dirs.valid.all()
    np.testing.assert_array_equal(np.abs(dirs.eta_hat).max(axis=(2, 3)), 1.0)
    gradient = np.array([not m.is_hot_cold for m in METHODS])
    np.testing.assert_array_equal(dirs.hot_class[gradient], -1)
    hot = dirs.hot_class[~gradient]
    assert ((hot >= 0) & (hot < numpy_net.num_classes)).all()
    assert (hot != labels[None, :]).all()
    np.testing.assert_allclose(dirs.logits, numpy_net.logits_of(images), rtol=1e-5, atol=1e-6)
    for m, method in enumerate(METHODS):
        if method.uses_sign:
            assert set(np.unique(dirs.eta_hat[m])) <= {-1.0, 0.0, 1.0}


def test_zero_direction_is_invalid(correct_images) -> None:
    """An image with every ReLU off has a zero gradient: valid False, eta_hat all zero."""
    net = NumpyClassifier()
    net.b1 = -np.abs(net.b1) - 0.1
    images, _ = correct_images
    images = np.concatenate([np.zeros((1, 8, 8), np.uint8), images[:5]])
    labels = net.logits_of(images).astype(np.float32).argmax(axis=1)
    dirs = compute_directions(net, images, labels, METHODS)
    assert not dirs.valid[:, 0].any()
    np.testing.assert_array_equal(dirs.eta_hat[:, 0], 0.0)
    assert dirs.valid[:, 1:].all()
    np.testing.assert_array_equal(np.abs(dirs.eta_hat[:, 1:]).max(axis=(2, 3)), 1.0)


def test_batches_share_one_forward_pass_and_give_the_same_directions(correct_images) -> None:
    """Seeds see each batch's own rows: batch size 5 gives what batch size 64 gives, in ceil(N/5) passes."""
    images, labels = correct_images
    whole = compute_directions(NumpyClassifier(), images, labels, METHODS)
    small = NumpyClassifier(batch_size=5)
    split = compute_directions(small, images, labels, METHODS)
    assert small.forward_passes == -(-len(images) // 5)
    np.testing.assert_allclose(split.eta_hat, whole.eta_hat, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(split.hot_class, whole.hot_class)
    np.testing.assert_array_equal(split.valid, whole.valid)
    np.testing.assert_array_equal(split.logits, whole.logits)


def test_directions_work_on_colour_images() -> None:
    """H x W x C images: FGV still matches the finite-difference gradient (Eq. 6)."""
    net = NumpyClassifier((6, 5, 3), num_classes=4, seed=2)
    images, labels = correctly_classified(net, 3)
    dirs = compute_directions(net, images, labels, [Method("FGV"), Method("HC-S", 3)])
    assert dirs.eta_hat.shape == (2, 3, 6, 5, 3)
    for i in range(3):
        grad = finite_difference(cross_entropy(net, labels[i]), images[i].astype(np.float64))
        np.testing.assert_allclose(dirs.eta_hat[0, i], normalized(grad), atol=1e-6)


def test_bad_labels_and_ranks_raise(numpy_net, correct_images) -> None:
    """Labels must match the images and lie in 0..K-1; the hot class rank k in 1..K-1."""
    images, labels = correct_images
    with pytest.raises(ValueError, match="shape"):
        compute_directions(numpy_net, images, labels[:-1], METHODS)
    with pytest.raises(ValueError, match="0..9"):
        compute_directions(numpy_net, images, np.full(len(images), 10), METHODS)
    with pytest.raises(ValueError, match="1..9"):
        compute_directions(numpy_net, images, labels, [Method("HC-D", 10)])
    with pytest.raises(TypeError):
        compute_directions(numpy_net, images.astype(np.int16), labels, METHODS)
