"""Generation at dataset scale: a Datum LMDB plus a metadata table, resumable.

The originals are processed in fixed chunks. For each chunk, the generated
images go into the LMDB in one transaction (all or nothing), then the chunk's
metadata rows are written to ``meta/chunk_NNNNNN.csv`` atomically; a chunk is
done when its metadata file exists. A run killed at any point resumes at the
first chunk without a metadata file; if that chunk's images already reached
the LMDB (killed between the two writes), they are not written again. Keys are
``<net>_<source index>_<method>``, so nothing is stored twice.
"""
from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hotcold._io import atomic_write
from hotcold.caffe_net import CaffeClassifier
from hotcold.generate import GeneratedImage, generate
from hotcold.lmdb_io import DatumLmdbAppender
from hotcold.search import SearchSettings

COLUMNS = ("key", "method", "source_index", "net", "label", "predicted", "hot_class", "eps", "scale",
           "pass_score", "pass_converged", "l2", "l2_per_pixel", "linf", "l2_input", "forward_passes",
           "accepted")
_BATCH = 100
"""Originals per call of :func:`generate` (one batched line search; the progress bar's step)."""


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


def _row(record: GeneratedImage, key: str, net: str, source_index: int) -> list:
    return [key, record.method, source_index, net, record.label, record.predicted, record.hot_class,
            f"{record.eps:.6g}", f"{record.scale:g}", f"{record.pass_score:.6f}", int(record.pass_converged),
            f"{record.l2:.6g}", f"{record.l2_per_pixel:.6g}", f"{record.linf:.6g}", f"{record.l2_input:.6g}",
            record.forward_passes, int(record.accepted)]


def _csv_text(rows: Sequence[Sequence]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buf.getvalue()


def generate_to_lmdb(
    classifier: CaffeClassifier,
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
) -> GenerationSummary:
    """Generate for every image and write ``images.lmdb`` + ``metadata.csv`` in ``out_dir``.

    Parameters
    ----------
    classifier, images, labels, methods, tau, scales, settings:
        As in :func:`hotcold.generate.generate`; only accepted images are stored.
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
    """
    out = Path(out_dir)
    meta_dir = out / "meta"
    meta_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels, np.int64)
    indices = np.arange(len(images)) if source_indices is None else np.asarray(source_indices, np.int64)
    if indices.shape != (len(images),) or labels.shape != (len(images),):
        raise ValueError(f"labels and source_indices must have {len(images)} entries")
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
            records, sources = [], []
            for sub in range(rows_slice.start, rows_slice.stop, _BATCH):
                end = min(sub + _BATCH, rows_slice.stop)
                batch = list(generate(classifier, images[sub:end], labels[sub:end], methods, tau, scales,
                                      settings=settings, chunk_size=_BATCH))
                records += batch
                sources += [int(indices[sub + r.source_index]) for r in batch]
                if bar is not None:
                    bar.update(end - sub)
            keys = [f"{net_name}_{i:07d}_{r.method}" for i, r in zip(sources, records)]
            fresh = [i for i, k in enumerate(keys) if k not in db]
            if fresh:
                db.append(np.stack([records[i].image for i in fresh]),
                          [records[i].label for i in fresh], [keys[i] for i in fresh])
            atomic_write(meta_path, _csv_text([_row(r, k, net_name, i)
                                                for r, k, i in zip(records, keys, sources)]))
            run += 1
        stored = len(db)
    if bar is not None:
        bar.close()
    complete = all((meta_dir / f"chunk_{c:06d}.csv").exists() for c in range(n_chunks))
    metadata = out / "metadata.csv"
    if complete:
        rows = []
        for c in range(n_chunks):
            with open(meta_dir / f"chunk_{c:06d}.csv", newline="") as fh:
                rows.extend(list(csv.reader(fh))[1:])
        atomic_write(metadata, _csv_text(rows))
    return GenerationSummary(out / "images.lmdb", metadata, stored, run, skipped,
                             time.perf_counter() - start_time, classifier.forward_passes - forwards_before)
