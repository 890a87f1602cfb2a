"""hotcold._io.atomic_write: whole files or nothing, from one string or from many pieces."""
from __future__ import annotations

import pytest

from hotcold._io import atomic_write


def test_pieces_are_written_in_order(tmp_path):
    path = atomic_write(tmp_path / "out" / "merged.csv", iter(["a,b\n", b"1,2\n", "3,4\n"]))
    assert path.read_text() == "a,b\n1,2\n3,4\n"
    assert atomic_write(path, "x\n").read_text() == "x\n"


def test_a_failing_piece_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "merged.csv", "old\n")

    def pieces():
        yield "new\n"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        atomic_write(path, pieces())
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["merged.csv"]
