"""InfiMNIST-style deformed MNIST digits (Sec. 2 and 5.2; Loosli, Canu, Bottou 2007).

The paper trains three LeNets on "1M images generated with InfiMNIST" (Table 1,
row "InfiMNIST (1M)") and measures the share of adversarials among 1M InfiMNIST
samples on three LeNets (Sec. 2: 2.199 +- 0.132%). InfiMNIST numbers its
samples: 0..9999 are the MNIST test images, 10000..69999 the training images,
and sample ``i >= 70000`` deforms training image ``a = (i - 10000) mod 60000``
with two of 1522 deformation fields ``F`` and the image's two tangent vectors
``T_x, T_y``::

    k1 = ((uint32) i * 131071 mod 2**32) mod 1521
    k2 = (k1 + 1 + 2 i) mod 1522
    alpha = -alpha0 if k1 + k2 is odd else alpha0          (alpha0 = 1)
    x' = clip(x + alpha (F[k1] * T_x - F[k2] * T_y), 0, 255), truncated to integers
    x'' = one of nine 1-pixel translations of x', number k1 mod 9

That indexing is reproduced exactly here (:func:`infimnist_indices`, the
translations with their border behaviour included). InfiMNIST's data files
(``fields_float_1522x28x28.bin``, ``tangVec_float_60000x28x28.bin``) are not
distributed with hotcold: by default :class:`InfimnistGenerator` computes its
own fields (smooth random displacement fields from a fixed seed) and tangent
vectors (derivatives of the Gaussian-smoothed image), so the samples are
InfiMNIST-*style*, not InfiMNIST's (``docs/infimnist.md``). Given the original
files (:func:`read_infimnist_files`), the samples are InfiMNIST's own.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from hotcold._guard import DirectoryLock, claim, file_digest
from hotcold._io import atomic_write
from hotcold._version import __version__
from hotcold.caffe.lmdb_io import DatumLmdbAppender
from hotcold.data.mnist import MNIST_TEST_IMAGES, MNIST_TRAIN_IMAGES, MnistData

FIELD_COUNT = 1522
"""Deformation fields of InfiMNIST (``FIELDNUM``)."""
FIRST_DEFORMED = MNIST_TEST_IMAGES + MNIST_TRAIN_IMAGES
"""The first InfiMNIST index that is a deformed digit (70000); lower indices are the MNIST images themselves."""
FIELDS_FILE = "fields_float_1522x28x28.bin"
"""InfiMNIST's deformation fields: 1522 x 784 float32, native (little-endian) byte order, no header."""
TANGENTS_FILE = "tangVec_float_60000x28x28.bin"
"""InfiMNIST's tangent vectors: 60000 x 2 x 784 float32 (T_x then T_y per training image), no header."""
SIDE = 28
PIXELS = SIDE * SIDE
DONE_NAME = "infimnist.json"
"""Written atomically when an InfiMNIST LMDB is complete."""


def infimnist_indices(index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(a, k1, k2, sign, translation)`` of InfiMNIST samples ``index >= 70000`` (exact InfiMNIST indexing).

    ``a``: the training image deformed; ``k1``, ``k2``: the fields; ``sign``:
    +1 or -1 (the parity of k1 + k2); ``translation``: ``k1 mod 9``. The
    product ``i * 131071`` wraps at 2**32 as InfiMNIST's ``uint32_t`` product does.

    Raises
    ------
    ValueError
        For an index below 70000 (those are the MNIST images, not deformations).
    """
    i = np.asarray(index, dtype=np.int64)
    if i.size and i.min() < FIRST_DEFORMED:
        raise ValueError(f"InfiMNIST indices below {FIRST_DEFORMED} are the MNIST images themselves, got "
                         f"{int(i.min())}; deformed samples start at {FIRST_DEFORMED}")
    wrapped = ((i % 2**32).astype(np.uint64) * np.uint64(131071)) % np.uint64(2**32)
    k1 = (wrapped % np.uint64(FIELD_COUNT - 1)).astype(np.int64)
    k2 = (k1 + 1 + 2 * i) % FIELD_COUNT
    a = (i - MNIST_TEST_IMAGES) % MNIST_TRAIN_IMAGES
    sign = np.where((k1 + k2) & 1, -1, 1).astype(np.int64)
    return a, k1, k2, sign, k1 % 9


def translate(flat: np.ndarray, kind: int) -> np.ndarray:
    """InfiMNIST's translation number ``kind`` (0..8) of N x 784 uint8 images, as its C code shifts them.

    0: up, 1: down, 2: left, 3: right, 4: up+left, 5: up+right, 6: down+left,
    7: down+right, 8: none. The horizontal shifts work on the flat pixel
    vector as InfiMNIST's do: a left shift zeroes column 0 and carries the next
    row's first pixel into column 27; a right shift zeroes column 1 and carries
    the previous row's last pixel into column 0.
    """
    if kind == 8:
        return flat
    if kind >= 4:
        return translate(translate(flat, 0 if kind in (4, 5) else 1), 2 if kind in (4, 6) else 3)
    out = np.zeros_like(flat)
    if kind == 0:
        out[:, :-SIDE] = flat[:, SIDE:]
    elif kind == 1:
        out[:, SIDE:] = flat[:, :-SIDE]
    elif kind == 2:
        out[:, :-1] = flat[:, 1:]
        out[:, ::SIDE] = 0
    elif kind == 3:
        out[:, 1:] = flat[:, :-1]
        out[:, 1::SIDE] = 0
    else:
        raise ValueError(f"translation kind must be 0..8, got {kind}")
    return out


@dataclass(frozen=True)
class InfimnistParams:
    """How the fields and tangent vectors are made when the original files are not used (docs/infimnist.md)."""

    alpha: float = 1.0
    """InfiMNIST's ``alpha``, the deformation strength (its default 1)."""
    translate: bool = True
    """Apply the 1-pixel translation ``k1 mod 9`` (InfiMNIST's default)."""
    field_seed: int = 0
    """Seed of the 1522 random fields (``numpy.random.default_rng``)."""
    field_sigma: float = 4.0
    """Gaussian smoothing of the white noise the fields come from, in pixels."""
    field_rms: float = 1.0
    """Root-mean-square of each field, in pixels of displacement."""
    tangent_sigma: float = 1.0
    """Gaussian whose derivatives give the tangent vectors T_x, T_y, in pixels."""

    def __post_init__(self) -> None:
        for name in ("alpha", "field_sigma", "field_rms", "tangent_sigma"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.field_seed, bool) or not isinstance(self.field_seed, int) or self.field_seed < 0:
            raise ValueError(f"field_seed must be an integer >= 0, got {self.field_seed!r}")


def read_infimnist_files(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """InfiMNIST's ``(fields, tangents)`` from its data folder: 1522 x 784 and 60000 x 2 x 784 float32 (memory-mapped).

    The files are InfiMNIST's ``data/`` files as distributed: raw float32 in
    little-endian order without a header, :data:`FIELDS_FILE` (1522 fields of
    28 x 28, row-major) and :data:`TANGENTS_FILE` (per training image, T_x then
    T_y, 28 x 28 each), 4,772,992 and 376,320,000 bytes.

    Raises
    ------
    ValueError
        A file is missing or has the wrong size, naming the file and the size it must have.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"--infimnist-data {str(folder)!r} is not a folder; give InfiMNIST's data folder holding "
                         f"{FIELDS_FILE} and {TANGENTS_FILE}")
    arrays = []
    for name, shape in ((FIELDS_FILE, (FIELD_COUNT, PIXELS)), (TANGENTS_FILE, (MNIST_TRAIN_IMAGES, 2, PIXELS))):
        path = root / name
        size = 4 * int(np.prod(shape))
        if not path.is_file():
            raise ValueError(f"{path} is missing; InfiMNIST's data folder holds {FIELDS_FILE} and {TANGENTS_FILE}")
        if path.stat().st_size != size:
            raise ValueError(f"{path} has {path.stat().st_size:,} bytes, InfiMNIST's has {size:,} "
                             f"(float32 {' x '.join(map(str, shape))}); it is not InfiMNIST's file")
        arrays.append(np.memmap(path, dtype="<f4", mode="r", shape=shape))
    return arrays[0], arrays[1]


class InfimnistGenerator:
    """InfiMNIST samples by index, vectorized over a batch (Loosli et al. 2007; the paper's Sec. 2 and 5.2).

    Parameters
    ----------
    mnist:
        The MNIST images (MD5-verified, :func:`hotcold.data.mnist.load_mnist`).
    data_dir:
        InfiMNIST's original data folder (:func:`read_infimnist_files`); None:
        fields and tangent vectors computed by hotcold from ``params``.
    params:
        Deformation settings (:class:`InfimnistParams`); only ``alpha`` and
        ``translate`` apply with ``data_dir``.
    """

    def __init__(self, mnist: MnistData, *, data_dir: str | os.PathLike | None = None,
                 params: InfimnistParams = InfimnistParams()) -> None:
        self.mnist = mnist
        self.params = params
        self.original = data_dir is not None
        if data_dir is not None:
            self.fields, self._tangents = read_infimnist_files(data_dir)
        else:
            rng = np.random.default_rng(params.field_seed)
            noise = gaussian_filter(rng.standard_normal((FIELD_COUNT, SIDE, SIDE)),
                                    sigma=(0, params.field_sigma, params.field_sigma), mode="reflect")
            rms = np.sqrt((noise ** 2).mean(axis=(1, 2), keepdims=True))
            self.fields = (params.field_rms * noise / rms).reshape(FIELD_COUNT, PIXELS).astype(np.float32)
            self._tangents = None

    def tangents(self, a: np.ndarray) -> np.ndarray:
        """N x 2 x 784 float32 tangent vectors (T_x, T_y) of training images ``a``, gray levels per pixel."""
        if self._tangents is not None:
            return np.asarray(self._tangents[a])
        images = self.mnist.train_images[a].astype(np.float32)
        s = self.params.tangent_sigma
        t_x = gaussian_filter(images, sigma=(0, s, s), order=(0, 0, 1), mode="constant")
        t_y = gaussian_filter(images, sigma=(0, s, s), order=(0, 1, 0), mode="constant")
        return np.stack([t_x, t_y], axis=1).reshape(len(a), 2, PIXELS).astype(np.float32)

    def samples(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(images N x 28 x 28 uint8, labels N int64)`` of InfiMNIST samples ``index`` (each >= 70000)."""
        a, k1, k2, sign, shift = infimnist_indices(index)
        x = self.mnist.train_images[a].reshape(len(a), PIXELS).astype(np.float32)
        t = self.tangents(a)
        alpha = (sign * self.params.alpha).astype(np.float32)[:, None]
        # float32 throughout, in InfiMNIST's order of operations, then truncation as its (int) cast does.
        deformed = x + alpha * (self.fields[k1] * t[:, 0] - self.fields[k2] * t[:, 1])
        flat = np.clip(deformed, 0, 255).astype(np.uint8)
        if self.params.translate:
            for kind in range(8):
                chosen = shift == kind
                if chosen.any():
                    flat[chosen] = translate(flat[chosen], kind)
        return flat.reshape(-1, SIDE, SIDE), self.mnist.train_labels[a].astype(np.int64)


@dataclass(frozen=True)
class InfimnistSummary:
    """What :func:`write_infimnist_lmdb` made."""

    lmdb: Path
    """``out/images.lmdb``: one Datum per sample, key = the InfiMNIST index (10 digits)."""
    first: int
    count: int
    original: bool
    """True with InfiMNIST's own data files, False for hotcold's fields and tangent vectors."""
    seconds: float
    """Seconds this call generated for (0 when the LMDB was already complete)."""
    samples_per_second: float
    resumed: bool


def write_infimnist_lmdb(out: str | os.PathLike, count: int, mnist: MnistData, *, first: int = FIRST_DEFORMED,
                         data_dir: str | os.PathLike | None = None, params: InfimnistParams = InfimnistParams(),
                         batch: int = 10000, overwrite: bool = False) -> InfimnistSummary:
    """InfiMNIST samples ``first .. first + count - 1`` streamed into ``out/images.lmdb`` (Sec. 5.2: 1M samples).

    Each batch is one LMDB transaction, so a killed run resumes at the first
    batch not stored; ``out/infimnist.json`` is written atomically when
    complete. The folder guards itself (``hotcold.json``): resuming with other
    settings stops with the differences unless ``overwrite``.

    Raises
    ------
    ValueError
        For a count or batch below 1, a first index below 70000, or bad ``data_dir`` files.
    """
    for name, value in (("count", count), ("batch", batch)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(first, bool) or not isinstance(first, (int, np.integer)) or first < FIRST_DEFORMED:
        raise ValueError(f"first must be an InfiMNIST index >= {FIRST_DEFORMED} (lower ones are the MNIST images), "
                         f"got {first!r}")
    generator = InfimnistGenerator(mnist, data_dir=data_dir, params=params)
    out = Path(out)
    # With the original files, which ones (by content): resuming on other files would mix two data sets.
    files = {name: file_digest(Path(data_dir) / name) for name in (FIELDS_FILE, TANGENTS_FILE)} \
        if generator.original else None
    identity = {"kind": "hotcold infimnist", "hotcold_version": __version__,
                "config": {"first": int(first), "count": int(count), "batch": int(batch), "original": generator.original,
                           "data_files": files, "params": asdict(params)}}
    with DirectoryLock(out, "infimnist"):
        claim(out, identity, overwrite=overwrite, fix="pass --overwrite to start over, or choose another --out")
        done = out / DONE_NAME
        lmdb = out / "images.lmdb"
        if done.is_file():
            return InfimnistSummary(lmdb, int(first), int(count), generator.original, 0.0, 0.0, resumed=True)
        start = time.perf_counter()
        with DatumLmdbAppender(lmdb, map_size=int(count) * 2 * (PIXELS + 64) + (64 << 20)) as appender:
            stored = len(appender)
            for begin in range(first + stored, first + count, batch):
                index = np.arange(begin, min(begin + batch, first + count))
                images, labels = generator.samples(index)
                appender.append(images, labels, [f"{i:010d}" for i in index.tolist()])
        seconds = time.perf_counter() - start
        rate = (count - stored) / seconds if seconds > 0 else 0.0
        atomic_write(done, json.dumps({"first": int(first), "count": int(count), "seconds": round(seconds, 2),
                                       "samples_per_second": round(rate, 1), "original": generator.original},
                                      indent=2) + "\n")
    return InfimnistSummary(lmdb, int(first), int(count), generator.original, seconds, rate, resumed=stored > 0)
