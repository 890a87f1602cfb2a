"""Caffe-compatible LMDB databases of ``Datum`` records.

Caffe's ``Data`` layer trains from an LMDB whose values are serialized
``caffe.Datum`` messages: ``channels``, ``height``, ``width``, the pixels as
``uint8`` bytes in C x H x W order, and an integer ``label``. It reads the
records in lexicographic key order, which is why keys are zero-padded indices
(``"00000000"``, ``"00000001"``, ...), as Caffe's ``convert_mnist_data`` writes
them. The fine-tuning sets of Sec. 5.2 (60K originals plus generated hard
positives, "different random orderings of the adversarial training data") are
built with :func:`write_shuffled_mix`; generation appends its images chunk by
chunk with :class:`DatumLmdbAppender` so that an interrupted run resumes.

Image layout: arrays are N x H x W (one channel) or N x H x W x C; records are
stored C x H x W as Caffe expects. Channel order (Caffe's BGR for colour nets)
is the caller's business.
"""
from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import struct
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import NamedTuple

import lmdb
import numpy as np
from google.protobuf.message import DecodeError

from hotcold.caffe.runtime import caffe_pb2

DEFAULT_COMMIT_EVERY = 1000
"""Records per write transaction (what ``convert_mnist_data`` uses)."""

_INITIAL_MAP_SIZE = 64 << 20
# data.mdb's meta pages (64-bit LMDB 0.9): a 16-byte page header, then MDB_meta: magic, version (u32 each),
# address, mapsize (u64), two 48-byte MDB_db records (the first one's md_pad holds the page size),
# last_pg, txnid (u64). Pages 0 and 1 are metas; the one with the higher txnid is current.
_LMDB_MAGIC = 0xBEEFC0DE
_LMDB_VERSION = 1
_META_MAGIC = 16
_META_DB0_PAD = 16 + 4 + 4 + 8 + 8
_META_LAST_PG = _META_DB0_PAD + 2 * 48
_META_END = _META_LAST_PG + 16
_PAGE_SIZES = frozenset(1 << k for k in range(9, 17))
_LMDB_FILES = frozenset({"data.mdb", "lock.mdb"})
_INT32 = np.iinfo(np.int32)

PathLike = str | os.PathLike[str]


class DatumArrays(NamedTuple):
    """Records of a Datum LMDB in key order (the order Caffe reads them)."""

    images: np.ndarray
    """``uint8``, N x H x W for one channel, N x H x W x C otherwise."""
    labels: np.ndarray
    """``int64``, length N."""
    keys: list[str]
    """The LMDB keys, sorted as LMDB (and Caffe) iterate them."""


class DatumLmdbAppender:
    """Append chunks of images to a Datum LMDB, creating it or continuing it.

    Each :meth:`append` is one LMDB transaction, so a chunk is stored entirely
    or not at all, even if the process dies; reopening the same path continues
    where the last completed chunk left off (see :meth:`keys`). Keys must be
    unique: appending a key that is already stored raises ``ValueError`` and
    stores nothing of that chunk. LMDB forbids opening one database twice in a
    process, so while an appender is open, read its state through it (``len``,
    ``in``, :meth:`keys`), not with :func:`read_datum_lmdb`.

    Parameters
    ----------
    path:
        LMDB directory; created when missing.
    map_size:
        Initial LMDB map size in bytes; it doubles whenever a chunk does not fit.
    """

    def __init__(self, path: PathLike, *, map_size: int | None = None) -> None:
        self.path = Path(path)
        if self.path.exists() and not (self.path / "data.mdb").is_file():
            raise ValueError(
                f"path={str(self.path)!r} exists but is not an LMDB directory "
                f"(no data.mdb); choose a new path or remove it"
            )
        if map_size is not None and map_size <= 0:
            raise ValueError(f"map_size must be a positive number of bytes, got {map_size}")
        if self.path.exists():
            check_lmdb_file(self.path)
        self._pb2: ModuleType = caffe_pb2()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._env = lmdb.open(str(self.path), map_size=map_size or _INITIAL_MAP_SIZE, subdir=True)
        self._max_key = self._env.max_key_size()
        with self._env.begin() as txn:
            first = next(iter(txn.cursor()), None)
        self._shape: tuple[int, ...] | None = (
            None if first is None else _decode(self._pb2, *first)[0].shape
        )

    @property
    def shape(self) -> tuple[int, ...] | None:
        """C x H x W of the stored records; ``None`` while the LMDB is empty."""
        return self._shape

    def __len__(self) -> int:
        return int(self._env.stat()["entries"])

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or not key.isascii():
            return False
        with self._env.begin() as txn:
            return txn.get(key.encode("ascii")) is not None

    def keys(self) -> list[str]:
        """All stored keys in LMDB order."""
        with self._env.begin() as txn:
            return [k.decode("ascii") for k in txn.cursor().iternext(keys=True, values=False)]

    def append(
        self, images: np.ndarray, labels: Sequence[int] | np.ndarray, keys: Sequence[str]
    ) -> None:
        """Store one chunk in one transaction (all of it or none of it).

        Parameters
        ----------
        images:
            ``uint8`` N x H x W or N x H x W x C; the record shape must match
            what the LMDB already holds (Caffe batches need one shape).
        labels:
            N integer labels (int32 range).
        keys:
            N unique ASCII keys, new to this LMDB. Caffe reads in key order, so
            zero-pad numbers (``f"{i:08d}"``).
        """
        chw, label_array = _validate_batch(images, labels)
        self._append_chw(chw, label_array, self._validate_keys(keys, len(chw)))

    def close(self) -> None:
        """Flush and close the LMDB (idempotent)."""
        self._env.close()

    def __enter__(self) -> DatumLmdbAppender:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _validate_keys(self, keys: Sequence[str], n: int) -> list[bytes]:
        if isinstance(keys, (str, bytes)):
            raise TypeError(f"keys must be a sequence of str, got a single {type(keys).__name__}")
        keys = list(keys)
        if len(keys) != n:
            raise ValueError(f"keys has {len(keys)} entries for {n} images; give one key per image")
        for key in keys:
            if not isinstance(key, str) or not key or not key.isascii():
                raise ValueError(f"keys must be non-empty ASCII str, got {key!r}")
            if len(key) > self._max_key:
                raise ValueError(
                    f"key {key!r} is longer than LMDB's limit of {self._max_key} bytes"
                )
        repeated = [key for key, count in Counter(keys).items() if count > 1]
        if repeated:
            raise ValueError(f"keys must be unique, but {repeated[:5]} occur more than once")
        return [key.encode("ascii") for key in keys]

    def _append_chw(self, chw: np.ndarray, labels: np.ndarray, keys: list[bytes]) -> None:
        """Serialize validated N x C x H x W records and store them in one transaction."""
        if len(chw) == 0:
            return
        if self._shape is not None and chw.shape[1:] != self._shape:
            raise ValueError(
                f"images have records of shape C x H x W = {chw.shape[1:]} but "
                f"{self.path} holds {self._shape}; Caffe batches need one shape"
            )
        datum = self._pb2.Datum()
        datum.channels, datum.height, datum.width = chw.shape[1:]
        values = []
        for image, label in zip(chw, labels.tolist()):
            datum.data = image.tobytes()
            datum.label = label
            values.append(datum.SerializeToString())
        self._put_chunk(list(zip(keys, values)))
        self._shape = chw.shape[1:]

    def _put_chunk(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Write ``pairs`` in one transaction, doubling the map size when full."""
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    for key, value in pairs:
                        if not txn.put(key, value, overwrite=False):
                            raise ValueError(
                                f"key {key.decode()!r} is already stored in {self.path}; "
                                f"nothing of this chunk was written. Skip keys already "
                                f"present (see .keys()) or choose new ones"
                            )
                return
            except lmdb.MapFullError:
                self._env.set_mapsize(2 * self._env.info()["map_size"])


def write_datum_lmdb(
    path: PathLike,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    keys: Sequence[str] | None = None,
    map_size: int | None = None,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    overwrite: bool = False,
) -> Path:
    """Write a complete Datum LMDB, as Caffe's ``convert_mnist_data`` does.

    The LMDB is built at ``path + ".tmp"`` and renamed to ``path`` only when
    complete, so ``path`` never holds a half-written database.

    Parameters
    ----------
    path:
        Target LMDB directory.
    images:
        ``uint8`` N x H x W or N x H x W x C (stored C x H x W).
    labels:
        N integer labels (int32 range).
    keys:
        N unique ASCII keys; default zero-padded indices ``"%08d"`` (wider when
        N > 10^8), so Caffe reads the records in array order. With other keys
        Caffe (and :func:`read_datum_lmdb`) read in sorted key order.
    map_size:
        Initial LMDB map size in bytes; default from the data size. It grows
        as needed either way.
    commit_every:
        Records per transaction.
    overwrite:
        Replace an existing LMDB at ``path``.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    chw, label_array = _validate_batch(images, labels)
    n = len(chw)
    if n == 0:
        raise ValueError("images is empty; Caffe cannot read an empty LMDB")
    _check_commit_every(commit_every)
    _check_target(path, overwrite)
    tmp = _scratch(path, ".tmp")
    initial = map_size or _initial_map_size(n, chw[0].nbytes)
    try:
        with DatumLmdbAppender(tmp, map_size=initial) as out:
            key_bytes = out._validate_keys(_index_keys(n) if keys is None else keys, n)
            for start in range(0, n, commit_every):
                stop = start + commit_every
                out._append_chw(chw[start:stop], label_array[start:stop], key_bytes[start:stop])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, path)
    return path


def iter_datum_lmdb(
    path: PathLike, *, batch_size: int = DEFAULT_COMMIT_EVERY
) -> Iterator[DatumArrays]:
    """Yield the records of a Datum LMDB in key order, ``batch_size`` at a time.

    For databases too large for :func:`read_datum_lmdb`; each batch is a
    :class:`DatumArrays` (the last one may be shorter).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    pb2 = caffe_pb2()
    with open_readonly(path) as env, env.begin() as txn:
        images: list[np.ndarray] = []
        labels: list[int] = []
        keys: list[str] = []
        for key, chw, label in _records(pb2, txn):
            images.append(chw)
            labels.append(label)
            keys.append(key)
            if len(keys) == batch_size:
                yield _batch(images, labels, keys)
                images, labels, keys = [], [], []
        if keys:
            yield _batch(images, labels, keys)


def read_datum_lmdb(path: PathLike) -> DatumArrays:
    """Read a whole Datum LMDB into memory, in key order (Caffe's order).

    Returns ``(images, labels, keys)`` as a :class:`DatumArrays`; images are
    N x H x W for one channel, N x H x W x C otherwise.
    """
    pb2 = caffe_pb2()
    with open_readonly(path) as env, env.begin() as txn:
        n = int(txn.stat()["entries"])  # of this snapshot, even while an appender writes
        images: np.ndarray | None = None
        labels = np.empty(n, dtype=np.int64)
        keys: list[str] = []
        for i, (key, chw, label) in enumerate(_records(pb2, txn)):
            if images is None:
                images = np.empty((n, *chw.shape), dtype=np.uint8)
            images[i] = chw
            labels[i] = label
            keys.append(key)
    if images is None:
        raise ValueError(f"path={str(path)!r} is an empty LMDB; there is nothing to read")
    return DatumArrays(_to_caller_layout(images), labels, keys)


def write_shuffled_mix(
    out_path: PathLike,
    sources: Sequence[PathLike],
    seed: int,
    *,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    map_size: int | None = None,
    overwrite: bool = False,
    select: Sequence[Sequence[str] | None] | None = None,
) -> int:
    """Concatenate Datum LMDBs and write them in a seeded random order.

    Builds the fine-tuning sets of Sec. 5.2: the 60K originals plus generated
    hard positives, where each of the paper's three fine-tuning runs per network
    uses "a different random ordering" (a different ``seed``). The output order
    is ``numpy.random.default_rng(seed).permutation`` applied to the sources
    concatenated in the given order, each in key order; output keys are new
    zero-padded indices. Records are copied byte for byte and streamed: only
    the source keys and the permutation are held in memory, so 1M records are
    fine. The LMDB is built at ``out_path + ".tmp"`` and renamed when complete.
    ``select`` takes, per source, the keys to use (in that order) or ``None``
    for all of them, e.g. only the generated images of some methods.

    Returns
    -------
    int
        Number of records written.
    """
    out_path = Path(out_path)
    if isinstance(sources, (str, os.PathLike)) or not sources:
        raise ValueError(f"sources must be a non-empty list of LMDB paths, got {sources!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int (it fixes the ordering), got {seed!r}")
    _check_commit_every(commit_every)
    source_paths = [Path(s) for s in sources]
    if any(out_path.resolve() == s.resolve() for s in source_paths):
        raise ValueError(f"out_path={str(out_path)!r} is also one of the sources; write elsewhere")
    _check_target(out_path, overwrite)
    pb2 = caffe_pb2()
    tmp = _scratch(out_path, ".tmp")
    try:
        with contextlib.ExitStack() as stack:
            txns = [
                stack.enter_context(stack.enter_context(open_readonly(s)).begin())
                for s in source_paths
            ]
            source_keys = [list(txn.cursor().iternext(keys=True, values=False)) for txn in txns]
            if select is not None:
                if len(select) != len(source_paths):
                    raise ValueError(f"select needs one entry per source ({len(source_paths)}), got {len(select)}")
                for s, keys in enumerate(select):
                    if keys is None:
                        continue
                    source_keys[s] = [k.encode("ascii") for k in keys]
                    missing = [k for k in source_keys[s] if txns[s].get(k) is None]
                    if missing:
                        raise ValueError(f"select[{s}]: {len(missing)} keys are not in {source_paths[s]}, "
                                         f"e.g. {missing[0].decode()!r}")
            shape = _common_shape(pb2, txns, source_paths)
            offsets = np.cumsum([0] + [len(k) for k in source_keys])
            total = int(offsets[-1])
            if shape is None:
                raise ValueError(f"sources {[str(s) for s in source_paths]} are all empty")
            order = np.random.default_rng(seed).permutation(total)
            width = _key_width(total)
            initial = map_size or _initial_map_size(total, math.prod(shape))
            with DatumLmdbAppender(tmp, map_size=initial) as out:
                for start in range(0, total, commit_every):
                    picks = order[start : start + commit_every]
                    which = np.searchsorted(offsets, picks, side="right") - 1
                    out._put_chunk(
                        [
                            (
                                f"{start + j:0{width}d}".encode("ascii"),
                                txns[s].get(source_keys[s][g - offsets[s]]),
                            )
                            for j, (g, s) in enumerate(zip(picks.tolist(), which.tolist()))
                        ]
                    )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _publish(tmp, out_path)
    return total


def shuffled_copy(src_lmdb: PathLike, out_path: PathLike, seed: int) -> Path:
    """A copy of ``src_lmdb`` in the random order ``seed``: one data ordering of Sec. 5.2.

    The order is :func:`write_shuffled_mix` with ``[src_lmdb]``.
    When ``out_path`` already exists (it only appears complete), it is checked
    against that order and reused.

    Raises
    ------
    ValueError
        When ``out_path`` holds something other than this copy.
    """
    out = Path(out_path)
    if not out.exists():
        write_shuffled_mix(out, [src_lmdb], seed)
        return out
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int (it fixes the ordering), got {seed!r}")
    with open_readonly(src_lmdb) as src, open_readonly(out) as dst, \
            src.begin() as src_txn, dst.begin() as dst_txn:
        keys = list(src_txn.cursor().iternext(keys=True, values=False))
        if dst.stat()["entries"] != len(keys):
            raise ValueError(f"out_path={str(out)!r} holds {dst.stat()['entries']} records, {src_lmdb} "
                             f"{len(keys)}; remove it or choose another path")
        order = np.random.default_rng(seed).permutation(len(keys))
        # The first records pin the permutation: a wrong seed or source shows at once.
        for (_, value), picked in zip(dst_txn.cursor(), order[:32]):
            if value != src_txn.get(keys[picked]):
                raise ValueError(f"out_path={str(out)!r} is not {src_lmdb} shuffled with seed={seed}; "
                                 "remove it or choose another path")
    return out


def _validate_batch(
    images: np.ndarray, labels: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Check a batch; return it as contiguous N x C x H x W ``uint8`` and ``int64`` labels."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(
            f"images must be uint8 (Datum stores bytes), got {images.dtype}; convert "
            f"with np.clip(np.rint(images), 0, 255).astype(np.uint8)"
        )
    if images.ndim == 3:
        chw = images[:, None, :, :]
    elif images.ndim == 4:
        chw = images.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"images must be N x H x W or N x H x W x C, got shape {images.shape}")
    label_array = np.asarray(labels)
    if label_array.ndim != 1 or len(label_array) != len(images):
        raise ValueError(
            f"labels must hold one integer per image ({len(images)}), got shape {label_array.shape}"
        )
    if len(label_array) and label_array.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, got dtype {label_array.dtype}")
    if len(label_array) and (label_array.min() < _INT32.min or label_array.max() > _INT32.max):
        raise ValueError("labels must fit in int32 (Datum.label is int32)")
    return np.ascontiguousarray(chw), label_array.astype(np.int64)


def _to_caller_layout(chw: np.ndarray) -> np.ndarray:
    """N x C x H x W -> N x H x W (one channel) or N x H x W x C."""
    if chw.shape[1] == 1:
        return chw[:, 0]
    return np.ascontiguousarray(chw.transpose(0, 2, 3, 1))


def _decode(pb2: ModuleType, key: bytes, value: bytes) -> tuple[np.ndarray, int]:
    """One serialized Datum -> (C x H x W ``uint8`` image, label)."""
    datum = pb2.Datum()
    try:
        datum.ParseFromString(value)
    except DecodeError:
        raise ValueError(f"record {key.decode(errors='replace')!r} is not a Caffe Datum; this LMDB was not written "
                         "by hotcold or convert_imageset") from None
    shape = (datum.channels, datum.height, datum.width)
    if datum.encoded or len(datum.data) != math.prod(shape):
        raise ValueError(
            f"record {key.decode(errors='replace')!r} is not a raw uint8 Datum of shape "
            f"{shape} (encoded={datum.encoded}, {len(datum.data)} data bytes, "
            f"{len(datum.float_data)} float_data values); hotcold reads raw uint8 Datums only"
        )
    return np.frombuffer(datum.data, dtype=np.uint8).reshape(shape), int(datum.label)


def _records(pb2: ModuleType, txn: lmdb.Transaction) -> Iterator[tuple[str, np.ndarray, int]]:
    """Yield (key, C x H x W image, label) in key order, checking one shape throughout."""
    shape = None
    cursor = txn.cursor()
    while True:
        try:
            if not (cursor.next() if shape is not None else cursor.first()):
                return
            key, value = cursor.key(), cursor.value()
        except lmdb.Error as exc:
            raise ValueError(f"the LMDB is damaged ({exc}); regenerate it or copy it again") from None
        chw, label = _decode(pb2, key, value)
        if shape is None:
            shape = chw.shape
        elif chw.shape != shape:
            raise ValueError(
                f"record {key.decode()!r} has shape {chw.shape}, earlier records {shape}"
            )
        yield key.decode("ascii"), chw, label


def _batch(images: list[np.ndarray], labels: list[int], keys: list[str]) -> DatumArrays:
    return DatumArrays(_to_caller_layout(np.stack(images)), np.array(labels, dtype=np.int64), keys)


def open_readonly(path: PathLike) -> lmdb.Environment:
    """Open a Datum LMDB directory for reading, after :func:`check_lmdb_file`.

    Raises
    ------
    FileNotFoundError
        When the directory holds no ``data.mdb``.
    ValueError
        When ``data.mdb`` is damaged or is no LMDB (instead of a SIGBUS or a raw lmdb error).
    """
    if not (Path(path) / "data.mdb").is_file():
        raise FileNotFoundError(f"{str(path)!r} is not an LMDB directory (no data.mdb)")
    check_lmdb_file(path)
    try:
        return lmdb.open(str(path), readonly=True, subdir=True)
    except lmdb.Error as exc:
        raise ValueError(f"LMDB {path} cannot be opened ({exc}); regenerate it or copy it again") from None


def lmdb_digest(path: PathLike) -> str:
    """SHA-256 (16 hex digits) of every key and value in key order: an LMDB's content, wherever it lies."""
    h = hashlib.sha256()
    with open_readonly(path) as env, env.begin() as txn:
        for key, value in txn.cursor():
            h.update(len(key).to_bytes(4, "little") + key)
            h.update(len(value).to_bytes(8, "little") + value)
    return h.hexdigest()[:16]


def check_lmdb_file(path: PathLike) -> None:
    """Check ``data.mdb``'s two meta pages before the file is memory-mapped.

    LMDB maps the file and trusts its meta pages: a truncated copy kills the
    process with SIGBUS when a page past the end is touched, and a foreign
    file gives raw errors. Here the newest meta page must carry LMDB's magic
    and version, and the file must hold every page up to its ``last_pg``.
    """
    data = Path(path) / "data.mdb"
    size = data.stat().st_size
    with open(data, "rb") as fh:
        head = fh.read(_META_END)
        metas = []
        if len(head) >= _META_END:
            page_size = struct.unpack_from("<I", head, _META_DB0_PAD)[0]
            if page_size in _PAGE_SIZES:
                fh.seek(page_size)
                second = fh.read(_META_END)
                for page in (head, second):
                    if len(page) == _META_END:
                        magic, version = struct.unpack_from("<II", page, _META_MAGIC)
                        last_pg, txnid = struct.unpack_from("<QQ", page, _META_LAST_PG)
                        if magic == _LMDB_MAGIC and version == _LMDB_VERSION:
                            metas.append((txnid, last_pg, page_size))
    if not metas:
        raise ValueError(f"{data} is not an LMDB data file (no valid meta page); give an LMDB directory written by "
                         "hotcold or Caffe's convert_imageset")
    _, last_pg, page_size = max(metas)
    need = (last_pg + 1) * page_size
    if size < need:
        raise ValueError(f"{data} is truncated: {size:,} bytes, but its last transaction uses {need:,}; copy it "
                         "again or regenerate it")


def _common_shape(
    pb2: ModuleType, txns: list[lmdb.Transaction], paths: list[Path]
) -> tuple[int, ...] | None:
    """The C x H x W shape shared by the sources' records; ``None`` if all are empty."""
    shapes = {}
    for txn, path in zip(txns, paths):
        first = next(iter(txn.cursor()), None)
        if first is not None:
            shapes[str(path)] = _decode(pb2, *first)[0].shape
    if len(set(shapes.values())) > 1:
        raise ValueError(
            f"sources hold records of different C x H x W shapes {shapes}; "
            f"Caffe batches need one shape"
        )
    return next(iter(shapes.values()), None)


def _check_commit_every(commit_every: int) -> None:
    if commit_every < 1:
        raise ValueError(f"commit_every must be >= 1, got {commit_every}")


def _index_keys(n: int) -> list[str]:
    width = _key_width(n)
    return [f"{i:0{width}d}" for i in range(n)]


def _key_width(n: int) -> int:
    return max(8, len(str(n - 1)))


def _initial_map_size(n: int, image_bytes: int) -> int:
    # LMDB leaf pages end up about half full after splits; records too big for
    # a leaf take whole overflow pages. Growth on MapFullError covers the rest.
    record = image_bytes + 32
    per_record = 2 * (record + 64) if record < 2000 else 4096 * (record // 4096 + 2)
    return max(_INITIAL_MAP_SIZE, n * per_record)


def _is_lmdb_dir(path: Path) -> bool:
    return path.is_dir() and set(os.listdir(path)) <= _LMDB_FILES


def _check_target(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if not _is_lmdb_dir(path):
        raise ValueError(
            f"{path} exists and is not an LMDB directory; refusing to replace it "
            f"even with overwrite=True. Remove it yourself or choose another path"
        )


def _scratch(path: Path, suffix: str) -> Path:
    """``path + suffix``, cleared of an LMDB left by an interrupted run."""
    scratch = path.with_name(path.name + suffix)
    if scratch.exists():
        if not _is_lmdb_dir(scratch):
            raise ValueError(
                f"{scratch} exists and is not an LMDB directory left by hotcold; "
                f"remove it yourself"
            )
        shutil.rmtree(scratch)
    return scratch


def _publish(tmp: Path, path: Path) -> None:
    """Move the finished LMDB ``tmp`` to ``path``, replacing an existing one."""
    if path.exists():
        old = _scratch(path, ".old")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)
