"""Atomic file writes: a reader sees the old file or the whole new one, never half of it."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write(path: str | os.PathLike, data: bytes | str | Iterable[bytes | str]) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    ``data`` may be an iterable of pieces, written one after the other, so that a large file made of many
    parts (a merged metadata CSV) never has to be held in memory whole.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            for piece in [data] if isinstance(data, (bytes, str)) else data:
                fh.write(piece.encode() if isinstance(piece, str) else piece)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
