"""InfiMNIST-style samples (Sec. 2 and 5.2): InfiMNIST's indexing worked by hand, its translations, its data
files, the resumable LMDB and the command line."""
from __future__ import annotations

import numpy as np
import pytest

import hotcold.data.infimnist as infimnist
from hotcold.caffe.lmdb_io import lmdb_digest, read_datum_lmdb
from hotcold.cli import main
from hotcold.data.infimnist import (
    FIELDS_FILE,
    TANGENTS_FILE,
    InfimnistGenerator,
    InfimnistParams,
    infimnist_indices,
    read_infimnist_files,
    translate,
    write_infimnist_lmdb,
)


def test_indexing_matches_the_hand_worked_examples():
    # i = 70000: 70000 * 131071 = 9,174,970,000; minus 2 * 2**32 (the uint32 wrap) = 585,035,408;
    #   585,035,408 - 1521 * 384,638 = 1010 = k1.  k2 = (1010 + 1 + 140000) mod 1522 = 141011 - 92 * 1522 = 987.
    #   k1 + k2 = 1997 is odd: alpha = -1.  a = (70000 - 10000) mod 60000 = 0.  1010 mod 9 = 2: shift left.
    # i = 70001: 9,175,101,071 - 2 * 2**32 = 585,166,479 = 1521 * 384,724 + 1275; k2 = 141278 - 140024 = 1254;
    #   1275 + 1254 odd: alpha = -1; a = 1; 1275 mod 9 = 6: down and left.
    # i = 2**32 + 70000: the uint32 product sees 70000 again, so k1 = 1010; k2 = (1011 + 2 i) mod 1522.
    big = 2**32 + 70000
    a, k1, k2, sign, shift = infimnist_indices(np.array([70000, 70001, 1009999, big]))
    assert a[:3].tolist() == [0, 1, 39999]
    assert k1.tolist()[:2] == [1010, 1275] and k1[3] == 1010
    assert k2.tolist()[:2] == [987, 1254] and k2[3] == (1011 + 2 * big) % 1522
    assert sign[:2].tolist() == [-1, -1]
    assert shift[:2].tolist() == [2, 6]
    assert a[3] == (big - 10000) % 60000


def test_indices_below_the_first_deformation_are_rejected():
    with pytest.raises(ValueError, match=r"below 70000 are the MNIST images themselves, got 69999"):
        infimnist_indices(np.array([69999]))


def _c_translate(c: list[int], t: int) -> list[int]:
    """InfiMNIST's translation(), pixel by pixel as its C code runs (the reference for translate())."""
    c = list(c)
    if t == 0:
        for i in range(784 - 28):
            c[i] = c[i + 28]
        for i in range(784 - 28, 784):
            c[i] = 0
    elif t == 1:
        for i in range(783, 27, -1):
            c[i] = c[i - 28]
        for i in range(27, -1, -1):
            c[i] = 0
    elif t == 2:
        for i in range(783):
            c[i] = 0 if i % 28 == 0 else c[i + 1]
        c[783] = 0
    elif t == 3:
        for i in range(783, 0, -1):
            c[i] = 0 if (i - 1) % 28 == 0 else c[i - 1]
        c[0] = 0
    elif t < 8:
        c = _c_translate(_c_translate(c, 0 if t in (4, 5) else 1), 2 if t in (4, 6) else 3)
    return c


@pytest.mark.parametrize("kind", range(9))
def test_translations_match_infimnists_c_code(kind):
    image = (np.arange(784) * 7 % 251 + 1).astype(np.uint8)
    assert translate(image[None], kind)[0].tolist() == _c_translate(image.tolist(), kind)


def test_original_files_are_read_and_used(mnist, tmp_path):
    fields = np.random.default_rng(0).standard_normal((1522, 784)).astype("<f4")
    fields[1010], fields[987] = 0.5, 0.25  # the fields of sample 70000 (hand-worked above)
    fields.tofile(tmp_path / FIELDS_FILE)
    tangents = np.memmap(tmp_path / TANGENTS_FILE, dtype="<f4", mode="w+", shape=(60000, 2, 784))
    tangents[0, 0], tangents[0, 1] = 2.0, 2.0  # T_x, T_y of training image 0
    tangents.flush()
    del tangents
    generator = InfimnistGenerator(mnist, data_dir=tmp_path)
    images, labels = generator.samples(np.array([70000]))
    x = mnist.train_images[0].astype(np.float32).ravel()
    # alpha = -1: x - (0.5 * 2 - 0.25 * 2) = x - 0.5, clipped at 0 and truncated; then shift left (k1 mod 9 = 2).
    expected = _c_translate(np.clip(x - 0.5, 0, 255).astype(np.int64).tolist(), 2)
    assert images[0].ravel().tolist() == expected
    assert labels.tolist() == [mnist.train_labels[0]]
    # the output folder records which files it was made from: other files cannot continue it
    write_infimnist_lmdb(tmp_path / "out", 10, mnist, data_dir=tmp_path, batch=5)
    fields[0] += 1
    fields.tofile(tmp_path / FIELDS_FILE)
    with pytest.raises(Exception, match="holds other results.*data_files"):
        write_infimnist_lmdb(tmp_path / "out", 10, mnist, data_dir=tmp_path, batch=5)
    (tmp_path / FIELDS_FILE).write_bytes(b"\0" * 100)
    with pytest.raises(ValueError, match=r"fields_float_1522x28x28.bin has 100 bytes, InfiMNIST's has 4,772,992"):
        read_infimnist_files(tmp_path)
    with pytest.raises(ValueError, match=r"is not a folder"):
        read_infimnist_files(tmp_path / "nothing")


def test_hotcolds_fields_deform_mildly_and_deterministically(mnist):
    index = np.arange(70000, 70500)
    first, labels = InfimnistGenerator(mnist).samples(index)
    again, _ = InfimnistGenerator(mnist).samples(index)
    assert np.array_equal(first, again)
    assert np.array_equal(labels, mnist.train_labels[:500])
    changed = np.abs(first.astype(int) - mnist.train_images[:500]).mean()
    assert 5 < changed < 60, "a deformation changes the digit, but keeps it a digit"
    other, _ = InfimnistGenerator(mnist, params=InfimnistParams(field_seed=1)).samples(index)
    assert not np.array_equal(first, other)


def test_lmdb_is_streamed_and_resumes_after_a_crash(mnist, tmp_path, monkeypatch):
    whole = write_infimnist_lmdb(tmp_path / "whole", 25, mnist, batch=10)
    records = read_datum_lmdb(whole.lmdb)
    assert records.keys[0] == "0000070000" and len(records.keys) == 25
    expected, _ = InfimnistGenerator(mnist).samples(np.arange(70000, 70025))
    assert np.array_equal(records.images, expected)

    real = InfimnistGenerator.samples
    calls = []

    def crash_on_second_batch(self, index):
        calls.append(len(index))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, index)

    monkeypatch.setattr(InfimnistGenerator, "samples", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        write_infimnist_lmdb(tmp_path / "cut", 25, mnist, batch=10)
    monkeypatch.setattr(InfimnistGenerator, "samples", real)
    resumed = write_infimnist_lmdb(tmp_path / "cut", 25, mnist, batch=10)
    assert resumed.resumed
    assert lmdb_digest(resumed.lmdb) == lmdb_digest(whole.lmdb)
    assert write_infimnist_lmdb(tmp_path / "cut", 25, mnist, batch=10).seconds == 0.0
    with pytest.raises(ValueError, match=r"config.count: 25 there, 26 now"):
        write_infimnist_lmdb(tmp_path / "cut", 26, mnist, batch=10)


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, r"count must be an integer >= 1, got 0"),
    ({"first": 100}, r"first must be an InfiMNIST index >= 70000"),
    ({"batch": 0}, r"batch must be an integer >= 1"),
])
def test_bad_arguments_are_rejected(mnist, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_infimnist_lmdb(tmp_path, **{"count": 5, "mnist": mnist, **kwargs})


@pytest.mark.parametrize("field, value", [("field_sigma", 0), ("alpha", -1.0), ("field_seed", -2)])
def test_bad_params_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        InfimnistParams(**{field: value})


def test_command_line(mnist, tmp_path, capsys):
    assert main(["data", "infimnist", "--count", "30", "--out", str(tmp_path / "a")]) == 0
    assert "30 InfiMNIST-style" in capsys.readouterr().out
    assert main(["data", "infimnist", "--count", "30", "--out", str(tmp_path / "b"), "--infimnist-data",
                 str(tmp_path / "none")]) == 2
    assert "is not a folder; give InfiMNIST's data folder" in capsys.readouterr().err
    assert main(["data", "infimnist", "--count", "30", "--out", str(tmp_path / "c"), "--first", "9"]) == 2
    assert "first must be an InfiMNIST index >= 70000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["data", "infimnist", "--count", "0", "--out", str(tmp_path / "d")])
    assert infimnist.DONE_NAME in {p.name for p in (tmp_path / "a").iterdir()}
