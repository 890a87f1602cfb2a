"""Generation at dataset scale: a Datum LMDB plus a metadata table, resumable.

The originals are processed in fixed chunks. For each chunk, the generated
images go into the LMDB in one transaction (all or nothing), then the chunk's
metadata rows are written to ``meta/chunk_NNNNNN.csv`` atomically; a chunk is
done when its metadata file exists. A run killed at any point resumes at the
first chunk without a metadata file; if that chunk's images already reached
the LMDB (killed between the two writes), they are not written again. Keys are
``<net>_<source index>_<method>``, so nothing is stored twice. Colour images are
stored in Caffe's BGR order (:func:`caffe_channel_order`).

The directory protects itself (:mod:`hotcold._guard`): one writer at a time,
and a re-run resumes only when the methods, settings, images, network and
code version are the ones that started it; anything else stops with the
differences named, unless ``overwrite`` starts over.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hotcold._guard import DirectoryLock, array_digest, check_plain_name, claim
from hotcold._io import atomic_write
from hotcold.caffe.lmdb_io import DatumLmdbAppender, iter_datum_lmdb
from hotcold.core.classifier import Classifier
from hotcold.core.generator import generate_batches, resolve_methods
from hotcold.core.records import GeneratedBatch
from hotcold.core.search import SearchSettings
from hotcold.data.records import records_csv
from hotcold.pipeline.stages import code_version

_BATCH = 100
"""Originals per batched line search within a chunk (the progress bar's step)."""


@dataclass(frozen=True)
class GenerationSummary:
    """What a generation run holds once complete."""

    lmdb: Path
    metadata: Path
    images: int
    chunks_run: int
    chunks_skipped: int
    seconds: float
    forward_passes: int


def generate_to_lmdb(
    classifier: Classifier,
    images: np.ndarray,
    labels: np.ndarray,
    methods: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    net_name: str = "net",
    tau: float | None = None,
    scales: Sequence[float] = (1.0,),
    settings: SearchSettings = SearchSettings(),
    chunk_size: int = 500,
    source_indices: np.ndarray | None = None,
    progress: bool = False,
    stop_after_chunks: int | None = None,
    overwrite: bool = False,
    overwrite_hint: str = "pass overwrite=True to start over, or use another out_dir",
) -> GenerationSummary:
    """Generate for every image and write ``images.lmdb`` + ``metadata.csv`` in ``out_dir``.

    Parameters
    ----------
    classifier, images, labels, methods, tau, scales, settings:
        As in :func:`hotcold.core.generator.generate_batches`; only accepted images are stored.
    out_dir:
        Run directory; an existing one is resumed.
    net_name:
        Name of the net in keys and in the ``net`` column.
    chunk_size:
        Originals per chunk (the unit of atomic writes and of resuming).
    source_indices:
        The originals' indices in their data set (default 0..N-1), stored as
        ``source_index``.
    stop_after_chunks:
        Stop after running this many chunks (to test resuming); None runs all.
    overwrite:
        Start over when ``out_dir`` holds another generation run (never in a
        directory hotcold did not make).
    overwrite_hint:
        How to start over, in the caller's terms (the CLI says ``--overwrite``).

    Raises
    ------
    hotcold._guard.OutputDirError
        When another process writes ``out_dir``, or it holds other results.
    """
    out = Path(out_dir)
    check_plain_name(net_name, "net_name")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")
    images = classifier.check_images(images)
    labels = np.asarray(labels, np.int64)
    indices = np.arange(len(images)) if source_indices is None else np.asarray(source_indices, np.int64)
    if indices.shape != (len(images),) or labels.shape != (len(images),):
        raise ValueError(f"labels and source_indices must have {len(images)} entries")
    resolved = resolve_methods(methods, scales, classifier.num_classes)
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1] or None, got {tau}")
    identity = {
        "kind": "hotcold generate",
        "config": {"methods": [m.name for m in resolved], "tau": tau, "settings": dataclasses.asdict(settings),
                   "chunk_size": int(chunk_size), "net_name": net_name},
        "inputs": {"images": array_digest(images, labels, indices), "network": _network_identity(classifier)},
        "code_version": code_version(),
    }
    with DirectoryLock(out, f"generate {net_name}"):
        claim(out, identity, overwrite=overwrite, fix=overwrite_hint)
        return _run_chunks(classifier, images, labels, indices, [m.name for m in resolved], out, net_name=net_name,
                           tau=tau, settings=settings, chunk_size=int(chunk_size), progress=progress,
                           stop_after_chunks=stop_after_chunks)


def caffe_channel_order(images: np.ndarray) -> np.ndarray:
    """Colour images (``N x H x W x 3``, RGB as hotcold's classifiers take them) in Caffe's BGR, the order
    of every colour Datum LMDB hotcold writes, so that Caffe's Data layer trains on them as on
    ``convert_imageset``'s; gray images as they are. Its own inverse."""
    return np.ascontiguousarray(images[..., ::-1]) if images.ndim == 4 and images.shape[3] == 3 else images


def _network_identity(classifier: Classifier) -> dict:
    """What identifies the network: its ``fingerprint()`` (file hashes) where it has one."""
    fingerprint = getattr(classifier, "fingerprint", None)
    return fingerprint() if callable(fingerprint) else {"type": type(classifier).__qualname__}


def _run_chunks(classifier, images, labels, indices, methods, out: Path, *, net_name, tau, settings, chunk_size,
                progress, stop_after_chunks) -> GenerationSummary:
    meta_dir = out / "meta"
    meta_dir.mkdir(parents=True, exist_ok=True)
    n_chunks = -(-len(images) // chunk_size)
    start_time = time.perf_counter()
    forwards_before = classifier.forward_passes
    run = skipped = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images), unit="img", desc=f"generate {net_name}")
    with DatumLmdbAppender(out / "images.lmdb") as db:
        for c in range(n_chunks):
            rows_slice = slice(c * chunk_size, min((c + 1) * chunk_size, len(images)))
            meta_path = meta_dir / f"chunk_{c:06d}.csv"
            if meta_path.exists():
                skipped += 1
                if bar is not None:
                    bar.update(rows_slice.stop - rows_slice.start)
                continue
            if stop_after_chunks is not None and run >= stop_after_chunks:
                break
            parts = []
            for sub in range(rows_slice.start, rows_slice.stop, _BATCH):
                end = min(sub + _BATCH, rows_slice.stop)
                parts += generate_batches(classifier, images[sub:end], labels[sub:end], methods, tau,
                                          settings=settings, chunk_size=_BATCH, net_name=net_name,
                                          source_indices=indices[sub:end])
                if bar is not None:
                    bar.update(end - sub)
            batch = GeneratedBatch.concat(parts)
            fresh = np.array([k not in db for k in batch.key.tolist()], bool)
            if fresh.any():
                db.append(caffe_channel_order(batch.images[fresh]), batch.label[fresh].tolist(),
                          batch.key[fresh].tolist())
            atomic_write(meta_path, records_csv(batch))
            run += 1
        stored = len(db)
    if bar is not None:
        bar.close()
    complete = all((meta_dir / f"chunk_{c:06d}.csv").exists() for c in range(n_chunks))
    metadata = out / "metadata.csv"
    if complete:
        # One chunk in memory at a time (60,000 images x 25 types are 1.46M rows).
        rows = ((meta_dir / f"chunk_{c:06d}.csv").read_text().partition("\n")[2] for c in range(n_chunks))
        atomic_write(metadata, itertools.chain([records_csv(GeneratedBatch.empty())], rows))
    return GenerationSummary(out / "images.lmdb", metadata, stored, run, skipped,
                             time.perf_counter() - start_time, classifier.forward_passes - forwards_before)


def merge_unit(run: Path, inputs: dict, *, out: str) -> dict:
    """The shards of one net, in key order, into ``images.lmdb`` + ``metadata.csv``: the one writer.

    The merged LMDB holds the same records, and ``metadata.csv`` the same rows
    in the same order, as one unsharded run over the same images.
    """
    shards = list(inputs.values())  # in the order of the unit's needs: the images' order
    target = run / out / "images.lmdb"
    if target.exists():  # a merge cut short: start it again
        shutil.rmtree(target)
    with DatumLmdbAppender(target) as db:
        for shard in shards:
            for batch in iter_datum_lmdb(run / shard["lmdb"]):
                db.append(batch.images, batch.labels, batch.keys)
    with open(run / shards[0]["metadata"]) as fh:
        header = fh.readline()
    rows = ((run / shard["metadata"]).read_text().partition("\n")[2] for shard in shards)
    atomic_write(run / out / "metadata.csv", itertools.chain([header], rows))
    return {"lmdb": f"{out}/images.lmdb", "metadata": f"{out}/metadata.csv",
            "images": sum(s["images"] for s in shards), "forward_calls": sum(s["forward_calls"] for s in shards)}


def image_set_unit(run: Path, inputs: dict, *, model: str, weights: str, deploy: str | None, images: str,
                   labels: str | None, start: int, stop: int, methods: list[str], tau: float | None,
                   max_eps: float, chunk_size: int, net_name: str, out: str, device: str = "cpu",
                   progress: bool = False) -> dict:
    """``hotcold generate --shards``: images ``start:stop`` of an image set, on a worker."""
    from hotcold.caffe.zoo import load_model

    spec = load_model(model)
    stat = Path(images).stat()
    x, y = _image_set(images, labels, spec.input_shape, stat.st_mtime_ns)
    classifier = spec.classifier(weights, deploy_prototxt=deploy, device=device)
    summary = generate_to_lmdb(classifier, x[start:stop], y[start:stop], methods, run / out, net_name=net_name,
                               tau=tau, settings=SearchSettings.capped(max_eps), chunk_size=chunk_size,
                               source_indices=np.arange(start, stop), progress=progress, overwrite=True)
    return {"lmdb": f"{out}/images.lmdb", "metadata": f"{out}/metadata.csv", "images": summary.images,
            "forward_calls": summary.forward_passes}


@functools.lru_cache(maxsize=1)
def _image_set(images: str, labels: str | None, input_shape: tuple[int, ...],
               mtime: int) -> tuple[np.ndarray, np.ndarray]:
    """The image set as ``hotcold generate`` reads it: larger images center-cropped to the net's input."""
    from hotcold.data.image_sets import load_image_set
    from hotcold.data.imagenet import crop_to_input

    x, y = load_image_set(images, labels=labels, channels=input_shape[0])
    return crop_to_input(x, *input_shape[1:]), y


def image_set_units(*, model: str, weights: str, deploy: str | None, images: str, labels: str | None, count: int,
                    shards: int, methods: list[str], tau: float | None, max_eps: float, chunk_size: int,
                    net_name: str, device: str, progress: bool) -> list:
    """The units of ``hotcold generate --shards N``: N ranges of whole chunks, then one merge."""
    from hotcold.pipeline.units import Unit

    chunks = -(-count // chunk_size)
    # Whole chunks, spread as evenly as they go (at most one shard per chunk).
    edges = sorted({min(count, chunk_size * (k * chunks // shards)) for k in range(shards + 1)})
    units = []
    for k, (start, stop) in enumerate(zip(edges[:-1], edges[1:])):
        units.append(Unit(f"shard{k:03d}", image_set_unit, {
            "model": model, "weights": weights, "deploy": deploy, "images": images, "labels": labels,
            "start": start, "stop": stop, "methods": methods, "tau": tau,
            "max_eps": max_eps, "chunk_size": chunk_size, "net_name": net_name, "out": f"shards/shard{k:03d}"},
            owns=(f"shards/shard{k:03d}",), local={"device": device, "progress": progress}))
    units.append(Unit("merge", merge_unit, {"out": "."}, needs=tuple(u.key for u in units)))
    return units
