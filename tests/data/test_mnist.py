"""MNIST loading (paper Sec. 5.2): IDX parsing, MD5 checks, the download path.

Real-data tests run when ``HOTCOLD_MNIST_DIR`` names a directory with the four
original files; the golden values (first labels, class counts) are the
well-known MNIST training-set statistics, also recorded in the data's
PROVENANCE.md.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from hotcold.data import (
    MNIST_FILES,
    MnistDownloadError,
    find_mnist_source,
    load_mnist,
    read_idx,
)

REAL_MNIST = os.environ.get("HOTCOLD_MNIST_DIR")
needs_real_mnist = pytest.mark.skipif(
    not REAL_MNIST, reason="set HOTCOLD_MNIST_DIR to the directory of the four MNIST files"
)
# Nothing listens on the discard port of localhost, so connecting fails at once.
REFUSING_MIRROR = "http://127.0.0.1:9/mnist/"


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
@pytest.mark.parametrize(
    ("code", "array"),
    [
        (0x08, np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)),
        (0x09, np.array([-128, 0, 127], dtype=np.int8)),
        (0x0B, np.array([[-300, 2], [3, 30000]], dtype=np.int16)),
        (0x0C, np.array([1, -70000, 2**31 - 1], dtype=np.int32)),
        (0x0D, np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2)),
        (0x0E, np.array([np.pi, -np.e])),
    ],
)
def test_read_idx_round_trip(tmp_path: Path, code: int, array: np.ndarray, gz: bool) -> None:
    path = write(tmp_path / "a.idx", idx_bytes(array, code), gz)
    got = read_idx(path)
    assert got.dtype == array.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    got[...] = 0  # writable


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda b: b"\x01" + b[1:], "not an IDX file"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX type code 0x07"),
        (lambda b: b[:3] + b"\x00" + b[4:], "declares 0 dimensions"),
        (lambda b: b[:10], "truncated IDX header"),
        (lambda b: b[:-1], "truncated or corrupt"),
        (lambda b: b + b"\x00", "truncated or corrupt"),
        (lambda b: b[:3], "not an IDX file"),
    ],
    ids=["magic", "type-code", "zero-dims", "short-header", "short-data", "extra-data", "tiny"],
)
@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "plain"])
def test_read_idx_rejects_corrupt_files(tmp_path: Path, mutate, match: str, gz: bool) -> None:
    good = idx_bytes(np.zeros((2, 3, 3), dtype=np.uint8), 0x08)
    path = write(tmp_path / "bad.idx", mutate(good), gz)
    with pytest.raises(ValueError, match=match):
        read_idx(path)


def test_read_idx_rejects_corrupt_gzip(tmp_path: Path) -> None:
    data = gzip.compress(idx_bytes(np.zeros(100, dtype=np.uint8), 0x08))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt gzip stream"):
        read_idx(path)


def fake_mnist_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES:
        (root / name).write_bytes(b"not mnist")
    return root


def test_source_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="lacks train-images-idx3-ubyte.gz"):
        find_mnist_source(tmp_path)


def test_source_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        find_mnist_source(tmp_path / "nowhere")


def test_source_md5_mismatch_names_file_and_both_md5s(tmp_path: Path) -> None:
    root = fake_mnist_dir(tmp_path / "m")
    actual = hashlib.md5(b"not mnist").hexdigest()
    expected = MNIST_FILES["train-images-idx3-ubyte.gz"]
    pattern = rf"train-images-idx3-ubyte.gz.*{actual}.*{expected}.*fresh copy"
    with pytest.raises(ValueError, match=pattern):
        find_mnist_source(root)


def test_env_var_is_used_and_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTCOLD_MNIST_DIR", str(fake_mnist_dir(tmp_path / "env")))
    with pytest.raises(ValueError, match=r"\$HOTCOLD_MNIST_DIR"):
        find_mnist_source(None, mirrors=[REFUSING_MIRROR], cache_dir=tmp_path / "cache")


def test_download_without_network_fails_fast_and_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTCOLD_MNIST_DIR", raising=False)
    cache = tmp_path / "cache"
    mirrors = [REFUSING_MIRROR, (tmp_path / "no-mirror").as_uri() + "/"]
    start = time.monotonic()
    with pytest.raises(MnistDownloadError) as info:
        find_mnist_source(mirrors=mirrors, cache_dir=cache, timeout=2.0)
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert MNIST_FILES["train-images-idx3-ubyte.gz"] in message
    assert all(m + "train-images-idx3-ubyte.gz" in message for m in mirrors)
    assert "HOTCOLD_MNIST_DIR" in message
    assert list(cache.iterdir()) == []  # no partial downloads left behind


def test_download_rejects_wrong_md5_from_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTCOLD_MNIST_DIR", raising=False)
    mirror = fake_mnist_dir(tmp_path / "mirror")
    cache = tmp_path / "cache"
    actual = hashlib.md5(b"not mnist").hexdigest()
    with pytest.raises(MnistDownloadError, match=f"got MD5 {actual}, expected"):
        find_mnist_source(mirrors=[mirror.as_uri() + "/"], cache_dir=cache)
    assert list(cache.iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mirrors": "https://example.org/"}, TypeError, "non-empty sequence"),
        ({"mirrors": []}, TypeError, "non-empty sequence"),
        ({"mirrors": ["ftp://example.org/"]}, ValueError, "not an http"),
        ({"timeout": 0}, ValueError, "timeout must be > 0"),
    ],
)
def test_download_arguments_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kwargs: dict, error: type, match: str
) -> None:
    monkeypatch.delenv("HOTCOLD_MNIST_DIR", raising=False)
    with pytest.raises(error, match=match):
        find_mnist_source(cache_dir=tmp_path, **kwargs)


@needs_real_mnist
def test_load_real_mnist() -> None:
    data = load_mnist(REAL_MNIST)
    assert data.train_images.shape == (60000, 28, 28) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (10000, 28, 28) and data.test_images.dtype == np.uint8
    assert data.train_labels.shape == (60000,) and data.train_labels.dtype == np.int64
    assert data.test_labels.shape == (10000,) and data.test_labels.dtype == np.int64
    assert data.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(data.train_labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]
    assert np.bincount(data.test_labels).sum() == 10000
    assert data.train_images.max() == 255 and data.train_images.min() == 0
    with pytest.raises(ValueError, match="read-only"):
        data.train_images[0, 0, 0] = 1


@needs_real_mnist
def test_load_uses_env_var() -> None:
    assert load_mnist().train_labels[:3].tolist() == [5, 0, 4]


@needs_real_mnist
def test_download_from_mirror_then_reuse_and_repair_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HOTCOLD_MNIST_DIR", raising=False)
    cache = tmp_path / "cache"
    mirror = Path(REAL_MNIST).as_uri() + "/"
    assert find_mnist_source(mirrors=[REFUSING_MIRROR, mirror], cache_dir=cache) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_FILES)
    # Verified cached files are reused without touching the network.
    assert find_mnist_source(mirrors=[REFUSING_MIRROR], cache_dir=cache) == cache
    # A corrupted cached file is fetched again, with a warning.
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="downloading it again"):
        find_mnist_source(mirrors=[mirror], cache_dir=cache)
    shutil.rmtree(cache)  # ~11 MB
