"""The column-wise record of generated images (:class:`~hotcold.core.records.GeneratedBatch`)."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.core.records import FIELD_NAMES, FIELDS, GeneratedBatch, GeneratedImage, record_key

NUMPY_DTYPE = {int: np.dtype(np.int64), float: np.dtype(np.float64), bool: np.dtype(bool)}


def columns(n: int, start: int = 0) -> dict[str, list]:
    """Plain Python lists for ``n`` rows (ints where floats go, 0/1 where bools go)."""
    idx = list(range(start, start + n))
    return dict(
        key=[record_key("net", i, "FGS") for i in idx], method=["FGS"] * n, source_index=idx, net=["net"] * n,
        label=[i % 10 for i in idx], predicted=[(i + 1) % 10 for i in idx], hot_class=[-1] * n,
        eps=[i + 1 for i in idx], scale=[1] * n, pass_score=[0.5 + i / 100 for i in idx],
        pass_converged=[i % 2 for i in idx], l2=[2 * i for i in idx], l2_per_pixel=[i / 784 for i in idx],
        linf=[i for i in idx], l2_input=[i / 256 for i in idx], forward_passes=[float(i) for i in idx],
        accepted=[i % 3 != 0 for i in idx])


def batch(n: int, start: int = 0, *, images: bool = True) -> GeneratedBatch:
    pixels = np.arange(start, start + n, dtype=np.uint8)[:, None, None] * np.ones((1, 2, 3), np.uint8)
    return GeneratedBatch(**columns(n, start), images=pixels if images else None)


def test_record_key_is_net_seven_digit_index_and_method() -> None:
    """LMDB keys <net>_<source index, 7 digits>_<method>, unique per (net, original, method)."""
    assert record_key("lenet", 42, "HC-D-1x1.05") == "lenet_0000042_HC-D-1x1.05"
    assert record_key("a", 1234567, "FGS") == "a_1234567_FGS"
    assert record_key("a", 1, "FGS") != record_key("a", 1, "FGV")


def test_construction_coerces_every_column_to_its_dtype() -> None:
    """Lists become 1-D arrays: str, int64, float64 and bool columns as FIELDS declares."""
    b = batch(4)
    assert len(b) == 4
    for field in FIELDS:
        column = getattr(b, field.name)
        assert isinstance(column, np.ndarray) and column.shape == (4,), field.name
        if field.dtype is str:
            assert column.dtype.kind == "U", field.name
        else:
            assert column.dtype == NUMPY_DTYPE[field.dtype], field.name
    np.testing.assert_array_equal(b.forward_passes, [0, 1, 2, 3])
    np.testing.assert_array_equal(b.pass_converged, [False, True, False, True])
    np.testing.assert_array_equal(b.scale, [1.0] * 4)
    scalar = GeneratedBatch(**{k: v[0] for k, v in columns(1).items()})
    assert len(scalar) == 1 and scalar.key.shape == (1,) and scalar.images is None


def test_mismatched_lengths_are_refused() -> None:
    """Every column, and the images, must have the same number of rows."""
    cols = columns(3)
    cols["eps"] = cols["eps"][:2]
    with pytest.raises(ValueError, match="column 'eps' has 2 rows, column 'key' has 3"):
        GeneratedBatch(**cols)
    cols = columns(3)
    cols["accepted"] = cols["accepted"] + [True]
    with pytest.raises(ValueError, match="column 'accepted' has 4 rows"):
        GeneratedBatch(**cols)
    with pytest.raises(ValueError, match="images has 2 rows, the columns have 3"):
        GeneratedBatch(**columns(3), images=np.zeros((2, 2, 3), np.uint8))


def test_empty_batches() -> None:
    """empty(): no rows, typed columns, images of shape 0 x H x W when a shape is given."""
    plain = GeneratedBatch.empty()
    assert len(plain) == 0 and plain.images is None
    assert plain.eps.dtype == np.float64 and plain.accepted.dtype == bool and plain.label.dtype == np.int64
    shaped = GeneratedBatch.empty((28, 28))
    assert shaped.images.shape == (0, 28, 28) and shaped.images.dtype == np.uint8
    assert list(shaped.rows()) == []
    assert len(GeneratedBatch.concat([])) == 0


def test_concat_keeps_row_order_and_images_only_when_all_have_them() -> None:
    """Rows of the batches in order; images dropped when any batch lacks them."""
    a, b = batch(3), batch(2, start=3)
    both = GeneratedBatch.concat([a, b])
    assert len(both) == 5
    np.testing.assert_array_equal(both.source_index, [0, 1, 2, 3, 4])
    assert both.key.tolist() == a.key.tolist() + b.key.tolist()
    np.testing.assert_array_equal(both.images[:, 0, 0], [0, 1, 2, 3, 4])
    mixed = GeneratedBatch.concat([a, batch(2, start=3, images=False)])
    assert len(mixed) == 5 and mixed.images is None
    with_empty = GeneratedBatch.concat([GeneratedBatch.empty((2, 3)), a])
    np.testing.assert_array_equal(with_empty.images, a.images)


def test_select_by_mask_and_by_index() -> None:
    """select() picks the same rows from every column and from the images."""
    b = batch(5)
    by_mask = b.select(b.accepted)
    np.testing.assert_array_equal(by_mask.source_index, [1, 2, 4])
    np.testing.assert_array_equal(by_mask.images[:, 1, 2], [1, 2, 4])
    by_index = b.select(np.array([4, 0]))
    np.testing.assert_array_equal(by_index.source_index, [4, 0])
    assert by_index.key.tolist() == [b.key[4], b.key[0]]
    np.testing.assert_array_equal(by_index.pass_score, b.pass_score[[4, 0]])
    assert len(b.select(np.zeros(5, bool))) == 0
    assert batch(2, images=False).select(np.array([1])).images is None


def test_rows_are_named_tuples_of_python_scalars() -> None:
    """rows(): one GeneratedImage per row with int / float / bool / str values and the image."""
    b = batch(3)
    rows = list(b.rows())
    assert len(rows) == 3 and all(isinstance(r, GeneratedImage) for r in rows)
    assert GeneratedImage._fields == FIELD_NAMES + ("image",)
    r = rows[2]
    assert r.key == "net_0000002_FGS" and type(r.key) is str
    assert r.source_index == 2 and type(r.source_index) is int
    assert r.eps == 3.0 and type(r.eps) is float
    assert r.accepted is True and rows[0].accepted is False
    assert r.pass_converged is False and rows[1].pass_converged is True
    np.testing.assert_array_equal(r.image, b.images[2])
    assert all(r.image is None for r in batch(2, images=False).rows())


def test_reads_like_a_mapping_of_columns() -> None:
    """batch["pass_score"] is the column; ``in`` and keys() know FIELDS; a wrong name lists the columns."""
    b = batch(2)
    assert b["pass_score"] is b.pass_score
    assert "pass_score" in b and "accepted" in b
    assert "images" not in b and "image" not in b and 3 not in b
    assert b.keys() == FIELD_NAMES == tuple(f.name for f in FIELDS)
    assert {name: b[name] for name in b.keys()}.keys() == set(FIELD_NAMES)
    with pytest.raises(KeyError, match="'psnr' is no column.*columns: key, method, source_index"):
        b["psnr"]
    with pytest.raises(KeyError, match="accepted"):
        b["images"]


def test_fields_define_each_column_once() -> None:
    """FIELDS names every dataclass column exactly once, with a known dtype and a meaning."""
    assert len(set(FIELD_NAMES)) == len(FIELD_NAMES) == 17
    assert FIELD_NAMES[0] == "key" and FIELD_NAMES[-1] == "accepted"
    assert all(f.dtype in (str, int, float, bool) and f.meaning for f in FIELDS)
    assert [n for n in GeneratedBatch.__dataclass_fields__ if n != "images"] == list(FIELD_NAMES)
