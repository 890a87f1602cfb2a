"""MNIST, the data set of the paper's LeNet experiments (Sec. 5.2).

The paper trains LeNet on "the standard 60K training samples" and tests on the
standard 10K test images. hotcold reads the four original LeCun IDX files and
checks each against its official MD5, so every run starts from byte-identical
data. Where the files come from, in order:

1. the ``source`` argument (a directory holding the four ``.gz`` files);
2. the ``HOTCOLD_MNIST_DIR`` environment variable (same layout);
3. a download into ``~/.cache/hotcold/mnist`` (``$XDG_CACHE_HOME`` is honoured)
   from :data:`MNIST_MIRRORS`.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import math
import os
import struct
import tempfile
import urllib.request
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

MNIST_FILES: Mapping[str, str] = MappingProxyType(
    {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
)
"""The four original IDX files and their official MD5 checksums."""

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
"""Base URLs tried in order; each serves the four files under their original names."""

MNIST_DIR_ENV = "HOTCOLD_MNIST_DIR"
"""Environment variable naming a directory that holds the four MNIST files."""
MNIST_TRAIN_IMAGES = 60000
"""Images in MNIST's training set."""
MNIST_TEST_IMAGES = 10000
"""Images in MNIST's test set."""

_IDX_DTYPES: Mapping[int, str] = MappingProxyType(
    {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
)
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


class MnistDownloadError(RuntimeError):
    """No mirror delivered an MNIST file with the official MD5."""


@dataclass(frozen=True, eq=False)
class MnistData:
    """The MNIST training and test sets, as distributed.

    Arrays are read-only so that one loaded copy can be shared safely; take
    ``.copy()`` to modify. Images are ``uint8`` in ``[0, 255]`` (Caffe's LeNet
    scales them by 1/256 itself); labels are ``int64`` digits ``0..9``.
    """

    train_images: np.ndarray
    """60000 x 28 x 28 ``uint8``, in the original file order."""
    train_labels: np.ndarray
    """60000 ``int64`` labels."""
    test_images: np.ndarray
    """10000 x 28 x 28 ``uint8``."""
    test_labels: np.ndarray
    """10000 ``int64`` labels."""

    def __repr__(self) -> str:
        return (
            f"MnistData(train_images={self.train_images.shape}, "
            f"test_images={self.test_images.shape})"
        )


def default_cache_dir() -> Path:
    """Where downloaded MNIST files are kept: ``$XDG_CACHE_HOME/hotcold/mnist``
    (``~/.cache/hotcold/mnist`` when the variable is unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hotcold" / "mnist"


def find_mnist_source(
    source: str | os.PathLike[str] | None = None,
    *,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    cache_dir: str | os.PathLike[str] | None = None,
    timeout: float = 20.0,
) -> Path:
    """Return a directory holding the four MNIST files, each MD5-verified.

    Parameters
    ----------
    source:
        Directory with the four ``.gz`` files of :data:`MNIST_FILES`. ``None``
        reads ``$HOTCOLD_MNIST_DIR``; when that is unset too, the files are
        downloaded into ``cache_dir`` (files already there are reused when
        their MD5 matches).
    mirrors:
        Base URLs (``http``, ``https`` or ``file``) tried in order for each file.
    cache_dir:
        Download target; ``None`` means :func:`default_cache_dir`.
    timeout:
        Seconds allowed for each connection attempt.

    Raises
    ------
    FileNotFoundError
        ``source`` or ``$HOTCOLD_MNIST_DIR`` lacks some of the files.
    ValueError
        A file in ``source`` or ``$HOTCOLD_MNIST_DIR`` has the wrong MD5.
    MnistDownloadError
        No mirror delivered a file with the official MD5.
    """
    if source is not None:
        return _verified_dir(Path(source), origin=f"source={str(source)!r}")
    env_dir = os.environ.get(MNIST_DIR_ENV)
    if env_dir:
        return _verified_dir(Path(env_dir), origin=f"${MNIST_DIR_ENV}={env_dir!r}")
    if isinstance(mirrors, str) or not mirrors:
        raise TypeError(
            f"mirrors must be a non-empty sequence of base URLs, got {mirrors!r}; "
            f"e.g. mirrors={list(MNIST_MIRRORS)!r}"
        )
    for base in mirrors:
        if not base.startswith(("http://", "https://", "file://")):
            raise ValueError(
                f"mirrors entry {base!r} is not an http://, https:// or file:// URL"
            )
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    for name, expected in MNIST_FILES.items():
        _download(target / name, expected, mirrors, timeout)
    return target


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzip-compressed or plain.

    The header is two zero bytes, a type code (``0x08`` uint8, ``0x09`` int8,
    ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64), the
    number of dimensions, then each dimension as a big-endian uint32; the data
    follow big-endian in C order. Returns a writable array in native byte order.

    Raises
    ------
    ValueError
        Bad magic, unknown type code, or a size that disagrees with the header.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(
                f"{path}: corrupt gzip stream ({exc}); download the file again"
            ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(
            f"{path} is not an IDX file: its magic number {raw[:4].hex()!r} "
            f"does not start with two zero bytes"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise ValueError(
            f"{path}: unknown IDX type code 0x{code:02x}; "
            f"valid codes are {[f'0x{c:02x}' for c in _IDX_DTYPES]}"
        )
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise ValueError(
            f"{path}: truncated IDX header ({len(raw)} bytes, "
            f"{header_len} needed for {ndim} dimensions)"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = np.dtype(_IDX_DTYPES[code])
    count = math.prod(dims)
    expected_len = header_len + count * dtype.itemsize
    if len(raw) != expected_len:
        raise ValueError(
            f"{path}: IDX header declares shape {dims} of {dtype.name} "
            f"({expected_len} bytes) but the data hold {len(raw)} bytes; "
            f"the file is truncated or corrupt, download it again"
        )
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=header_len)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def load_mnist(source: str | os.PathLike[str] | None = None) -> MnistData:
    """Load MNIST from ``source`` (see :func:`find_mnist_source` for the lookup
    order and the MD5 checks)."""
    root = find_mnist_source(source)

    def frozen(name: str, dtype: type) -> np.ndarray:
        array = read_idx(root / name).astype(dtype, copy=False)
        array.setflags(write=False)
        return array

    return MnistData(
        train_images=frozen("train-images-idx3-ubyte.gz", np.uint8),
        train_labels=frozen("train-labels-idx1-ubyte.gz", np.int64),
        test_images=frozen("t10k-images-idx3-ubyte.gz", np.uint8),
        test_labels=frozen("t10k-labels-idx1-ubyte.gz", np.int64),
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verified_dir(root: Path, origin: str) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(
            f"{origin} is not a directory; point it at a directory holding "
            f"{', '.join(MNIST_FILES)}"
        )
    missing = [name for name in MNIST_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{origin} lacks {', '.join(missing)}; put the original gzip files "
            f"there (e.g. from {MNIST_MIRRORS[0]}) or unset it to download them"
        )
    for name, expected in MNIST_FILES.items():
        actual = _md5(root / name)
        if actual != expected:
            raise ValueError(
                f"MNIST file {root / name} (from {origin}) has MD5 {actual}, "
                f"expected {expected}; it is corrupt or not the original file. "
                f"Replace it with a fresh copy from {MNIST_MIRRORS[0]}{name}"
            )
    return root


def _download(dest: Path, expected: str, mirrors: Sequence[str], timeout: float) -> None:
    """Make ``dest`` hold the file with MD5 ``expected``, trying each mirror."""
    if dest.is_file():
        actual = _md5(dest)
        if actual == expected:
            return
        warnings.warn(
            f"cached {dest} has MD5 {actual}, expected {expected}; downloading it again",
            stacklevel=3,
        )
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + dest.name
        try:
            actual = _fetch(url, dest, expected, timeout)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(f"  {url}: {exc}")
            continue
        if actual == expected:
            return
        failures.append(f"  {url}: got MD5 {actual}, expected {expected}")
    raise MnistDownloadError(
        f"could not download MNIST file {dest.name} (MD5 {expected}) from any mirror:\n"
        + "\n".join(failures)
        + f"\nFix: fetch the four files {', '.join(MNIST_FILES)} by other means into "
        f"one directory and set {MNIST_DIR_ENV} to it (or pass source=...), or pass "
        f"mirrors=[...] that this machine can reach."
    )


def _fetch(url: str, dest: Path, expected: str, timeout: float) -> str:
    """Stream ``url`` into a temporary file beside ``dest``; move it into place
    only when its MD5 is ``expected``. Returns the MD5 received."""
    digest = hashlib.md5()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if actual == expected:
            os.replace(tmp_name, dest)
        return actual
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def prepare_mnist(out: str | os.PathLike[str], *, source: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """MD5-verified MNIST as Caffe Datum LMDBs ``train.lmdb`` and ``test.lmdb`` in ``out``.

    ``source`` as in :func:`find_mnist_source`. LMDBs already complete in
    ``out`` are kept (they are written atomically, so a present one is whole).
    Returns ``{"train_lmdb": path, "test_lmdb": path}``.
    """
    from hotcold.caffe.lmdb_io import write_datum_lmdb

    out = Path(out)
    paths = {"train_lmdb": out / "train.lmdb", "test_lmdb": out / "test.lmdb"}
    if not all((p / "data.mdb").is_file() for p in paths.values()):
        data = load_mnist(find_mnist_source(source))
        splits = {"train_lmdb": (data.train_images, data.train_labels),
                  "test_lmdb": (data.test_images, data.test_labels)}
        for name, path in paths.items():
            if not (path / "data.mdb").is_file():
                write_datum_lmdb(path, *splits[name])
    return {k: str(v) for k, v in paths.items()}
