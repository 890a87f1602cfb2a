"""Directions (Sec. 4.1-4.2), the line search and hard positives (Sec. 4.3) on a trained LeNet."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.core.directions import compute_directions, hot_cold_seed, kth_most_similar, loss_seed
from hotcold.core.generator import generate
from hotcold.core.methods import Method, parse_methods
from hotcold.core.search import SearchSettings, breakpoints, candidate, hard_positives, line_search

METHODS = parse_methods(["FGS", "FGV", "HC-D-1..3", "HC-S-1"])


def test_trained_lenet_is_a_real_classifier(lenet, mnist):
    error = np.mean(lenet.classify(mnist.test_images[:1000]) != mnist.test_labels[:1000])
    assert error < 0.1


def test_kth_most_similar_and_eq7_seed():
    logits = np.array([[1.0, 5.0, 3.0, -2.0], [0.5, -1.0, 2.0, 4.0]])
    labels = np.array([1, 3])
    np.testing.assert_array_equal(kth_most_similar(logits, labels, 1), [2, 2])
    np.testing.assert_array_equal(kth_most_similar(logits, labels, 3), [3, 1])
    omega = hot_cold_seed(logits, labels, np.array([3, 1]))
    # Eq. 7: |h_t| at the hot class, -h_y at the cold class, 0 elsewhere.
    np.testing.assert_array_equal(omega, [[0, -5, 0, 2], [0, 1, 0, -4]])
    with pytest.raises(ValueError, match="hot class rank k must be in 1..3"):
        kth_most_similar(logits, labels, 4)


def test_fgv_is_the_cross_entropy_gradient_in_pixel_units(lenet, correct_test_digits):
    """FGV's seed is dJ/dh; B_l maps it to dJ/dpixel = dJ/d(net input) * input scale."""
    from hotcold.caffe.runtime import import_caffe

    images, labels = correct_test_digits
    images, labels = images[:4], labels[:4]
    grad = lenet.backprop(images, "ip2", lambda h, rows: loss_seed(h, labels[rows]).astype(np.float32))
    net = lenet.net
    net.blobs["data"].reshape(4, 1, 28, 28)
    net.blobs["data"].data[...] = images[:, None] / 256.0
    h = net.forward(end="ip2")["ip2"].copy()
    raw = net.backward(ip2=loss_seed(h, labels).astype(np.float32))["data"][:, 0]
    np.testing.assert_allclose(grad, raw / 256.0, rtol=1e-5, atol=1e-9)
    import_caffe()  # the classifier still works after direct use of its net
    assert lenet.predict(images).shape == (4, 10)


def test_directions_are_normalized_signs_match_and_batching_changes_nothing(lenet, correct_test_digits):
    images, labels = correct_test_digits
    images, labels = images[:6], labels[:6]
    d = compute_directions(lenet, images, labels, METHODS)
    assert d.eta_hat.shape == (len(METHODS), 6, 28, 28)
    assert d.valid.all()
    np.testing.assert_allclose(np.abs(d.eta_hat).max(axis=(2, 3)), 1.0)
    by_name = {m.name: i for i, m in enumerate(d.methods)}
    np.testing.assert_array_equal(d.eta_hat[by_name["FGS"]], np.sign(d.eta_hat[by_name["FGV"]]))
    np.testing.assert_array_equal(d.eta_hat[by_name["HC-S-1"]], np.sign(d.eta_hat[by_name["HC-D-1"]]))
    np.testing.assert_array_equal(d.hot_class[by_name["HC-D-2"]], kth_most_similar(d.logits, labels, 2))
    assert (d.hot_class[by_name["FGS"]] == -1).all()
    one_by_one = np.stack([compute_directions(lenet, images[i:i + 1], labels[i:i + 1], METHODS).eta_hat[:, 0]
                           for i in range(6)], axis=1)
    np.testing.assert_allclose(d.eta_hat, one_by_one, rtol=1e-5, atol=1e-6)


def test_hot_cold_direction_moves_toward_the_hot_class(lenet, correct_test_digits):
    images, labels = correct_test_digits
    d = compute_directions(lenet, images[:20], labels[:20], parse_methods("HC-D-1"))
    hot = d.hot_class[0]
    rows = np.arange(20)
    before = d.logits[rows, hot] - d.logits[rows, labels[:20]]
    after_logits = lenet.predict(candidate(images[:20].astype(float), d.eta_hat[0], 8.0))
    after = after_logits[rows, hot] - after_logits[rows, labels[:20]]
    assert np.mean(after > before) > 0.9


def test_candidate_is_discrete_and_breakpoints_are_where_it_changes():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, size=(5, 5)).astype(float)
    d = rng.uniform(-1, 1, size=(5, 5))
    d /= np.abs(d).max()
    cuts = breakpoints(x, d, 0.0, 20.0)
    assert np.all(np.diff(cuts) > 0)
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        a, b = candidate(x, d, lo + 1e-9), candidate(x, d, hi - 1e-9)
        np.testing.assert_array_equal(a, b)  # constant between breakpoints
    mids = (cuts[:-1] + cuts[1:]) / 2
    images = candidate(x[None], d[None], mids)  # one image, many eps: a batch of candidates
    assert images.dtype == np.uint8
    assert all(np.any(images[i] != images[i + 1]) for i in range(len(mids) - 1))


def _level_below(x, d, eps_star):
    cuts = breakpoints(x.astype(float), d, 0.0, eps_star)
    return (cuts[-2] + cuts[-1]) / 2 if len(cuts) > 1 else cuts[-1] / 2


def test_line_search_finds_minimal_adversarials(lenet, correct_test_digits):
    """f(x(eps*)) != y while the candidate one step below is still classified y."""
    images, labels = correct_test_digits
    images, labels = images[:20], labels[:20]
    d = compute_directions(lenet, images, labels, METHODS)
    x = np.tile(images, (len(METHODS), 1, 1))
    eta = d.eta_hat.reshape((-1, 28, 28))
    y = np.tile(labels, len(METHODS))
    before = lenet.forward_passes
    result = line_search(lenet, x, eta, y)
    calls = lenet.forward_passes - before
    assert result.found.mean() > 0.9
    found = np.flatnonzero(result.found)
    np.testing.assert_array_equal(result.images[found],
                                  candidate(x[found].astype(float), eta[found], result.eps[found]))
    assert np.all(lenet.classify(result.images[found]) != y[found])
    np.testing.assert_array_equal(result.predicted[found], lenet.classify(result.images[found]))
    below = np.stack([candidate(x[j].astype(float), eta[j], _level_below(x[j], eta[j], result.eps[j]))
                      for j in found])
    assert np.all(np.any(below != result.images[found], axis=(1, 2)))
    np.testing.assert_array_equal(lenet.classify(below), y[found])
    # Batched: one Caffe call per round evaluates every active job.
    assert result.evaluations[found].min() >= 1
    assert calls < result.evaluations.sum() / 10
    assert calls <= 40


def test_line_search_cap_reports_no_adversarial(lenet, correct_test_digits):
    images, labels = correct_test_digits
    d = compute_directions(lenet, images[:4], labels[:4], parse_methods("FGV"))
    result = line_search(lenet, images[:4], d.eta_hat[0], labels[:4],
                         SearchSettings(initial_eps=0.1, initial_step=0.1, growth=1.0, max_eps=0.3))
    assert not result.found.any()
    assert np.isnan(result.eps).all()
    np.testing.assert_array_equal(result.images, images[:4])
    zero = line_search(lenet, images[:2], np.zeros((2, 28, 28)), labels[:2])
    assert not zero.found.any() and zero.evaluations.sum() == 0


def test_hard_positives_scale_beyond_the_minimum(lenet, correct_test_digits):
    images, labels = correct_test_digits
    d = compute_directions(lenet, images[:10], labels[:10], parse_methods("HC-D-1"))
    result = line_search(lenet, images[:10], d.eta_hat[0], labels[:10])
    ok = result.found
    hp, pred = hard_positives(lenet, images[:10][ok], d.eta_hat[0][ok], result.eps[ok], 1.10)
    diff_min = np.abs(result.images[ok].astype(int) - images[:10][ok]).max(axis=(1, 2))
    diff_hp = np.abs(hp.astype(int) - images[:10][ok]).max(axis=(1, 2))
    assert np.all(diff_hp >= diff_min)
    assert hp.dtype == np.uint8 and pred.shape == (ok.sum(),)
    np.testing.assert_array_equal(hp, candidate(images[:10][ok].astype(float), d.eta_hat[0][ok], 1.10 * result.eps[ok]))
    np.testing.assert_array_equal(pred, lenet.classify(hp))
    with pytest.raises(ValueError, match="scale must be >= 1"):
        hard_positives(lenet, images[:1], d.eta_hat[0][:1], result.eps[:1], 0.9)


def test_generate_records_metrics_and_tau(lenet, correct_test_digits):
    images, labels = correct_test_digits
    images, labels = images[:12], labels[:12]
    records = list(generate(lenet, images, labels, ["FGS", "FGV", "HC-D-1", "HC-S-1"], scales=(1.0, 1.05),
                            keep_rejected=True))
    names = {r.method for r in records}
    assert names == {"FGS", "FGV", "HC-D-1", "HC-S-1", "FGSx1.05", "FGVx1.05", "HC-D-1x1.05", "HC-S-1x1.05"}
    for r in records:
        x = images[r.source_index].astype(float)
        assert r.image.dtype == np.uint8
        assert r.label == labels[r.source_index]
        assert r.l2 == pytest.approx(np.linalg.norm(r.image - x))
        assert r.l2_per_pixel == pytest.approx(r.l2 / 784)
        assert r.l2_input == pytest.approx(r.l2 / 256)
        assert r.linf == np.abs(r.image - x).max()
        assert 0 < r.pass_score <= 1
        if r.scale == 1.0:
            assert r.predicted != r.label and r.accepted
        assert (r.hot_class >= 0) == r.method.startswith("HC")
    # Eq. 5: tau keeps only images with PASS >= tau.
    tau = float(np.median([r.pass_score for r in records]))
    kept = list(generate(lenet, images, labels, ["FGS", "FGV", "HC-D-1", "HC-S-1"], tau=tau, scales=(1.0, 1.05)))
    assert 0 < len(kept) < len(records)
    assert all(r.pass_score >= tau and r.accepted for r in kept)
    # Hard positives are filtered by PASS too, and only by PASS (they keep label y).
    rejected_hp = [r for r in records if r.scale > 1 and r.pass_score < tau]
    assert rejected_hp and not {(r.method, r.source_index) for r in rejected_hp} & {(r.method, r.source_index) for r in kept}
    assert any(r.scale > 1 for r in kept)


def test_generate_skips_misclassified_originals(lenet, mnist):
    images, labels = mnist.test_images[:500], mnist.test_labels[:500].astype(np.int64)
    wrong = np.flatnonzero(lenet.classify(images) != labels)
    assert wrong.size > 0
    right = np.flatnonzero(lenet.classify(images) == labels)[:3]
    pick = np.concatenate([wrong[:3], right])
    records = list(generate(lenet, images[pick], labels[pick], ["FGS", "HC-D-1"]))
    assert {r.source_index for r in records} <= {3, 4, 5}
    assert {r.source_index for r in records} == {3, 4, 5}


def test_method_names():
    assert [m.name for m in parse_methods(["HC-D-1..3", "FGS"])] == ["FGS", "HC-D-1", "HC-D-2", "HC-D-3"]
    assert parse_methods("HC-D-1x1.05")[0] == Method("HC-D", 1, 1.05)
    assert parse_methods("HC-D-2x1.10")[0].name == "HC-D-2x1.1"
    with pytest.raises(ValueError, match="unknown method 'HC-X-1'"):
        parse_methods("HC-X-1")
    with pytest.raises(ValueError, match="at most 9"):
        parse_methods("HC-D-1..10", num_classes=10)
    with pytest.raises(ValueError, match="scale must be >= 1"):
        parse_methods("FGSx0.5")
