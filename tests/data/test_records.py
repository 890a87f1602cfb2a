"""Tests of hotcold.data.records: metadata.csv written and read back as GeneratedBatch columns."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hotcold.core.records import FIELD_NAMES, GeneratedBatch
from hotcold.data.records import read_records, records_csv
from tests.fake_records import write_metadata


def test_read_records_types_and_concatenation(tmp_path: Path) -> None:
    a = write_metadata(tmp_path / "a.csv", {"FGS": 3, "HC-D-1": 2}, seed=1)
    b = write_metadata(tmp_path / "b.csv", {"FGV": 4}, seed=2)
    meta = read_records([a, b])
    assert set(meta) == set(FIELD_NAMES)
    assert all(len(column) == 9 for column in meta.values())
    assert meta["method"].tolist() == ["FGS"] * 3 + ["HC-D-1"] * 2 + ["FGV"] * 4
    assert meta["source_index"].dtype == np.int64 and meta["pass_score"].dtype == np.float64
    assert meta["accepted"].dtype == bool and meta["pass_converged"].dtype == bool
    np.testing.assert_allclose(meta["l2_input"], meta["l2"] / 256)


def test_read_records_header_only_and_no_files(tmp_path: Path) -> None:
    empty = write_metadata(tmp_path / "empty.csv", {})
    for meta in (read_records(empty), read_records([])):
        assert set(meta) == set(FIELD_NAMES)
        assert all(column.size == 0 for column in meta.values())


def test_read_records_missing_column(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "bad.csv", {"FGS": 2}, drop="linf")
    with pytest.raises(ValueError, match=r"metadata column 'linf' is missing"):
        read_records(path)


def test_read_records_bad_value(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "bad.csv", {"FGS": 3})
    lines = path.read_text().splitlines()
    fields = lines[2].split(",")
    fields[list(FIELD_NAMES).index("pass_score")] = "high"
    lines[2] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3: column 'pass_score': cannot read 'high' as float"):
        read_records(path)


def test_records_round_trip_through_csv(tmp_path: Path) -> None:
    meta = read_records(write_metadata(tmp_path / "a.csv", {"FGS": 4, "HC-D-1x1.05": 3}, seed=3))
    path = tmp_path / "again.csv"
    path.write_text(records_csv(meta))
    again = read_records(path)
    for name in FIELD_NAMES:
        if meta[name].dtype.kind == "f":
            np.testing.assert_allclose(again[name], meta[name], rtol=1e-5)
        else:
            np.testing.assert_array_equal(again[name], meta[name])
    assert records_csv(again) == path.read_text()  # formatting is a fixed point


def test_records_csv_formats_each_field() -> None:
    batch = GeneratedBatch(key=["n_0000003_FGS"], method=["FGS"], source_index=[3], net=["n"], label=[7],
                           predicted=[1], hot_class=[-1], eps=[12.3456789], scale=[1.0], pass_score=[0.98765432],
                           pass_converged=[True], l2=[100.123456789], l2_per_pixel=[0.127706], linf=[35.0],
                           l2_input=[0.39110725], forward_passes=[11], accepted=[False])
    header, row = records_csv(batch).splitlines()
    assert header.split(",") == list(FIELD_NAMES)
    assert row == "n_0000003_FGS,FGS,3,n,7,1,-1,12.3457,1,0.987654,1,100.123,0.127706,35,0.391107,11,0"


def test_unreadable_records_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read generated-image records"):
        read_records(tmp_path / "missing.csv")
