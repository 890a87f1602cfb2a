"""Generated-image records on disk: ``metadata.csv`` beside a generation run's LMDB.

One row per stored image, the columns of :data:`hotcold.core.records.FIELDS`
in that order, written with each field's text format (bools as 0/1). Reading
gives back a :class:`~hotcold.core.records.GeneratedBatch` without images
(they are in the LMDB under ``key``).
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from hotcold.core.records import FIELD_NAMES, FIELDS, GeneratedBatch

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")


def records_csv(batch: GeneratedBatch, *, header: bool = True) -> str:
    """The rows of ``batch`` as ``metadata.csv`` text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if header:
        writer.writerow(FIELD_NAMES)
    columns = []
    for f in FIELDS:
        values = batch[f.name].tolist()
        if f.dtype is bool:
            columns.append([int(v) for v in values])
        elif f.text:
            columns.append([format(v, f.text) for v in values])
        else:
            columns.append(values)
    writer.writerows(zip(*columns))
    return buf.getvalue()


def read_records(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> GeneratedBatch:
    """Read ``metadata.csv`` files, concatenated in the order given, as one batch without images.

    Extra columns are ignored. Booleans accept true/false, 1/0, yes/no.

    Raises
    ------
    ValueError
        Naming the file and the missing column, or the file, line and column
        of a value that cannot be read.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    parts = [_read_one(Path(p)) for p in paths]
    return GeneratedBatch.concat(parts) if parts else GeneratedBatch.empty()


def _read_one(path: Path) -> GeneratedBatch:
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise ValueError(f"cannot read generated-image records {path}: {exc.strerror}") from exc
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: empty file, expected a header with the columns {list(FIELD_NAMES)}")
        header = [h.strip() for h in header]
        for name in FIELD_NAMES:
            if name not in header:
                raise ValueError(f"{path}: metadata column {name!r} is missing; the header has {header}, "
                                 f"expected {list(FIELD_NAMES)}")
        rows = []
        for row in reader:
            if len(row) != len(header):
                raise ValueError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}")
            rows.append(row)
    columns = list(zip(*rows)) if rows else [()] * len(header)
    return GeneratedBatch(**{f.name: _column(list(columns[header.index(f.name)]), f.dtype, f.name, path)
                             for f in FIELDS})


def _column(values: list[str], kind: type, name: str, path: Path) -> np.ndarray:
    """Convert one CSV column; on failure name the file, line, column and value."""
    if kind is str:
        return np.array(values, dtype=np.str_)
    if kind is bool:
        lowered = np.char.lower(np.char.strip(np.array(values, dtype=np.str_)))
        good = np.isin(lowered, _TRUE + _FALSE)
        if not good.all():
            bad = int(np.flatnonzero(~good)[0])
            raise ValueError(f"{path}:{2 + bad}: column {name!r}: cannot read {values[bad]!r} as a boolean "
                             f"(use one of {_TRUE + _FALSE})")
        return np.isin(lowered, _TRUE)
    try:
        return np.array(values, dtype=np.int64 if kind is int else np.float64)
    except ValueError:
        for i, text in enumerate(values):
            try:
                kind(text)
            except ValueError:
                raise ValueError(f"{path}:{2 + i}: column {name!r}: cannot read {text!r} as {kind.__name__}") from None
        raise
