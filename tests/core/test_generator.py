"""Generation of adversarials and hard positives with PASS and Eq. 5's acceptance (Sec. 3-5) on a NumPy net."""
from __future__ import annotations

import numpy as np
import pytest

import hotcold.core.generator as generator_module
from hotcold.core.directions import compute_directions
from hotcold.core.generator import generate, generate_batches
from hotcold.core.methods import Method, parse_methods, with_scales
from hotcold.core.pass_measure import pass_scores
from hotcold.core.records import FIELDS, GeneratedBatch, record_key
from hotcold.core.search import candidate, line_search

from .conftest import NumpyClassifier, correctly_classified

METHOD_NAMES = ["FGS", "FGV", "HC-D-1..2", "HC-S-1"]
SCALES = (1.0, 1.05)
SOURCES = np.array([10, 31, 52, 73, 94, 115])
DTYPE_KIND = {str: "U", int: "i", float: "f", bool: "b"}


def make_net() -> NumpyClassifier:
    return NumpyClassifier((16, 16), seed=3)


@pytest.fixture(scope="module")
def originals() -> tuple[np.ndarray, np.ndarray]:
    """6 smooth 16 x 16 images (PASS needs >= 11 x 11) labelled with the net's own predictions."""
    return correctly_classified(make_net(), 6, seed=4, smooth=True)


@pytest.fixture(scope="module")
def batches(originals) -> list[GeneratedBatch]:
    """Every found image of 5 directions x 2 scales, in chunks of 4 originals, with no threshold."""
    images, labels = originals
    return list(generate_batches(make_net(), images, labels, METHOD_NAMES, None, SCALES, chunk_size=4,
                                 keep_rejected=True, net_name="toy", source_indices=SOURCES, pass_workers=2))


@pytest.fixture(scope="module")
def rows(batches) -> GeneratedBatch:
    return GeneratedBatch.concat(batches)


def test_one_batch_per_chunk_with_typed_columns_of_one_length(batches) -> None:
    """ceil(6 / 4) batches; every column of FIELDS has its dtype and the batch's length."""
    assert len(batches) == 2
    for batch in batches:
        assert len(batch) > 0
        for field in FIELDS:
            column = batch[field.name]
            assert column.dtype.kind == DTYPE_KIND[field.dtype], field.name
            assert column.shape == (len(batch),), field.name
        assert batch.images.dtype == np.uint8 and batch.images.shape == (len(batch), 16, 16)
        np.testing.assert_array_equal(batch.net, "toy")


def test_every_original_and_method_once_with_keys_and_source_indices(rows, originals) -> None:
    """One row per (original, method); key = record_key(net, source_index, method); source_indices honoured."""
    images, labels = originals
    methods = {m.name for m in with_scales(parse_methods(METHOD_NAMES), SCALES)}
    assert len(methods) == 10
    assert sorted(zip(rows.source_index.tolist(), rows.method.tolist())) == sorted(
        (s, m) for s in SOURCES.tolist() for m in methods)
    assert rows.key.tolist() == [record_key("toy", s, m) for s, m in zip(rows.source_index.tolist(),
                                                                         rows.method.tolist())]
    assert len(set(rows.key.tolist())) == len(rows)
    assert rows.key[0].startswith(f"toy_{rows.source_index[0]:07d}_")
    position = np.searchsorted(SOURCES, rows.source_index)
    np.testing.assert_array_equal(rows.label, labels[position])
    # The metrics tie each row to its own original: L-inf of the image against images[position].
    diff = rows.images.astype(np.int64) - images[position]
    np.testing.assert_array_equal(rows.linf, np.abs(diff).reshape(len(rows), -1).max(axis=1))
    np.testing.assert_allclose(rows.l2, np.sqrt((diff.reshape(len(rows), -1) ** 2).sum(axis=1)))
    np.testing.assert_allclose(rows.l2_input, rows.l2 / 256)
    np.testing.assert_allclose(rows.l2_per_pixel, rows.l2 / 256)


def test_rows_match_directions_line_search_and_pass(rows, originals) -> None:
    """eps = scale * eps*, images x(scale * eps*), hot_class, predicted and PASS (Eq. 4) per row.

    ``forward_passes`` is the job's line-search evaluations (the originals'
    logits come from the directions' forward pass), plus one for a hard
    positive's own classification.
    """
    images, labels = originals
    net = make_net()
    directions = tuple(sorted({Method(m.family, m.k) for m in parse_methods(METHOD_NAMES)}))
    dirs = compute_directions(net, images, labels, directions)
    m, n = dirs.eta_hat.shape[:2]
    eta = dirs.eta_hat.reshape((m * n, 16, 16))
    x = np.tile(images, (m, 1, 1))
    search = line_search(net, x, eta, np.tile(labels, m), logits=np.tile(dirs.logits, (m, 1)))
    assert search.found.all()
    names = [d.name for d in directions]
    for r in range(len(rows)):
        direction = rows.method[r].split("x")[0]
        i = int(np.searchsorted(SOURCES, rows.source_index[r]))
        j = names.index(direction) * n + i
        scale = rows.scale[r]
        assert scale == (1.05 if rows.method[r].endswith("x1.05") else 1.0)
        assert rows.eps[r] == pytest.approx(scale * search.eps[j], rel=1e-12)
        assert rows.forward_passes[r] == search.evaluations[j] + (scale != 1.0)
        assert rows.hot_class[r] == dirs.hot_class[j // n, i]
        expected = candidate(images[i].astype(np.float64), eta[j], scale * search.eps[j])
        np.testing.assert_array_equal(rows.images[r], expected)
    assert (rows.hot_class[np.char.startswith(rows.method, "F")] == -1).all()
    assert (rows.hot_class[np.char.startswith(rows.method, "HC")] >= 0).all()
    np.testing.assert_array_equal(rows.predicted, net.classify(rows.images))
    some = np.arange(0, len(rows), 5)
    position = np.searchsorted(SOURCES, rows.source_index[some])
    expected_pass = pass_scores(rows.images[some], images[position], workers=2)
    np.testing.assert_allclose(rows.pass_score[some], expected_pass.scores, rtol=1e-12)
    np.testing.assert_array_equal(rows.pass_converged[some], expected_pass.converged)


def test_no_threshold_accepts_every_found_image(rows) -> None:
    """tau = None: every row is accepted; minimal adversarials are misclassified (f(x~) != y)."""
    assert rows.accepted.all()
    minimal = rows.scale == 1.0
    assert minimal.any() and (~minimal).any()
    assert (rows.predicted[minimal] != rows.label[minimal]).all()


def test_eq5_threshold_on_pass(rows, originals) -> None:
    """Eq. 5: accepted iff PASS >= tau and (f(x~) != y or a hard positive); keep_rejected keeps the rest."""
    images, labels = originals
    tau = float(np.median(rows.pass_score))

    def run(keep_rejected: bool) -> GeneratedBatch:
        return GeneratedBatch.concat(list(generate_batches(
            make_net(), images, labels, ["FGV", "HC-D-1"], tau, SCALES, keep_rejected=keep_rejected,
            source_indices=SOURCES, net_name="toy", pass_workers=2)))

    kept = run(True)
    assert len(kept) == 24
    expected = (kept.pass_score >= tau) & ((kept.scale > 1) | (kept.predicted != kept.label))
    np.testing.assert_array_equal(kept.accepted, expected)
    assert kept.accepted.any() and not kept.accepted.all()
    accepted = run(False)
    assert accepted.key.tolist() == kept.key[kept.accepted].tolist()
    assert (accepted.pass_score >= tau).all() and accepted.accepted.all()
    np.testing.assert_array_equal(accepted.images, kept.images[kept.accepted])


def test_hard_positive_classified_as_its_label_is_accepted_on_pass_alone(originals, monkeypatch) -> None:
    """Hard positives keep y and need only PASS >= tau, "whether or not the net still misclassifies" (Sec. 3)."""
    images, labels = originals
    real = generator_module.hard_positives

    def back_to_label(classifier, x, eta, eps, scale):
        """The real hard positives, but the net labels each one as its original (y)."""
        hp, _ = real(classifier, x, eta, eps, scale)
        return hp, classifier.classify(np.asarray(x, np.uint8))

    monkeypatch.setattr(generator_module, "hard_positives", back_to_label)

    def run(tau: float) -> GeneratedBatch:
        return GeneratedBatch.concat(list(generate_batches(
            make_net(), images[:4], labels[:4], ["FGV", "HC-D-1"], tau, SCALES, keep_rejected=True,
            pass_workers=2)))

    batch = run(0.0)
    hp = batch.scale > 1
    assert hp.sum() == 8
    np.testing.assert_array_equal(batch.predicted[hp], batch.label[hp])
    assert batch.accepted.all()
    tau = float(np.median(batch.pass_score[hp]))
    strict = run(tau)
    hp = strict.scale > 1
    np.testing.assert_array_equal(strict.accepted[hp], strict.pass_score[hp] >= tau)
    assert strict.accepted[hp].any() and not strict.accepted[hp].all()


def test_generate_yields_the_rows_of_the_batches(originals, batches) -> None:
    """generate() is generate_batches() row by row, with the uint8 image in each row."""
    images, labels = originals
    flat = list(generate(make_net(), images[:4], labels[:4], METHOD_NAMES, None, SCALES, chunk_size=4,
                         keep_rejected=True, net_name="toy", source_indices=SOURCES[:4], pass_workers=2))
    expected = list(batches[0].rows())
    assert len(flat) == len(expected) == len(batches[0]) == 40
    for got, want in zip(flat, expected):
        assert got[:-1] == want[:-1]
        np.testing.assert_array_equal(got.image, want.image)
        assert got.image.dtype == np.uint8
    assert isinstance(flat[0].eps, float) and isinstance(flat[0].accepted, bool)
    assert flat[0].key == record_key("toy", flat[0].source_index, flat[0].method)


def test_chunk_size_does_not_change_the_rows(originals, rows) -> None:
    """Chunks only group the work: chunk_size 1 gives the same records.

    Float columns may differ in the last bits: BLAS sums a batch of another
    size in another order, so eta_hat differs by an ulp.
    """
    images, labels = originals
    ones = list(generate_batches(make_net(), images[:2], labels[:2], METHOD_NAMES, None, SCALES, chunk_size=1,
                                 keep_rejected=True, net_name="toy", source_indices=SOURCES[:2], pass_workers=2))
    assert len(ones) == 2
    together = rows.select(np.isin(rows.source_index, SOURCES[:2]))
    merged = GeneratedBatch.concat(ones)
    order = np.argsort(merged.key)
    reference = np.argsort(together.key)
    for field in FIELDS:
        got, want = merged[field.name][order], together[field.name][reference]
        if field.dtype is float:
            np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=field.name)
        else:
            np.testing.assert_array_equal(got, want, field.name)
    np.testing.assert_array_equal(merged.images[order], together.images[reference])


def test_misclassified_originals_are_skipped(originals) -> None:
    """An adversarial needs a correctly classified original: wrong labels yield no rows, the rest is intact."""
    images, labels = originals
    wrong = labels.copy()
    wrong[[1, 4]] = (labels[[1, 4]] + 1) % 10
    batch = GeneratedBatch.concat(list(generate_batches(make_net(), images, wrong, ["FGS", "HC-D-2"], None,
                                                        source_indices=SOURCES, pass_workers=2)))
    assert sorted(set(batch.source_index.tolist())) == SOURCES[[0, 2, 3, 5]].tolist()
    assert len(batch) == 8
    # Each row still belongs to its own original: label, hot class (Eq. 7) and L-inf distance.
    position = np.searchsorted(SOURCES, batch.source_index)
    np.testing.assert_array_equal(batch.label, labels[position])
    logits = make_net().logits_of(images[position])
    second = np.argsort(-logits, axis=1)[:, 2]
    np.testing.assert_array_equal(batch.hot_class, np.where(batch.method == "HC-D-2", second, -1))
    diff = np.abs(batch.images.astype(np.int64) - images[position]).reshape(len(batch), -1)
    np.testing.assert_array_equal(batch.linf, diff.max(axis=1))
    none = list(generate_batches(make_net(), images, (labels + 1) % 10, ["FGS", "HC-D-1"], None))
    assert len(none) == 1 and len(none[0]) == 0
    assert none[0].images.shape == (0, 16, 16)


def test_bad_arguments_raise(originals) -> None:
    """tau outside [0, 1], chunk_size < 1, mismatched labels / source indices, unknown methods."""
    images, labels = originals
    net = make_net()
    for tau in (-0.1, 1.5):
        with pytest.raises(ValueError, match="tau"):
            list(generate_batches(net, images, labels, "FGS", tau))
    with pytest.raises(ValueError, match="chunk_size"):
        list(generate_batches(net, images, labels, "FGS", chunk_size=0))
    with pytest.raises(ValueError, match="labels"):
        list(generate_batches(net, images, labels[:-1], "FGS"))
    with pytest.raises(ValueError, match="source_indices"):
        list(generate_batches(net, images, labels, "FGS", source_indices=SOURCES[:-1]))
    with pytest.raises(ValueError, match="unknown method"):
        list(generate_batches(net, images, labels, "FGX"))
    with pytest.raises(ValueError, match="at most 9"):
        list(generate_batches(net, images, labels, "HC-D-10"))
    with pytest.raises(ValueError, match="empty"):
        list(generate_batches(net, images, labels, []))
    assert net.forward_passes == 0
