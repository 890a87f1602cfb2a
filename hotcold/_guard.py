"""Output directories that protect themselves: a lock against a second writer, a record of what made them.

Every directory hotcold writes results into (``hotcold generate --out``, a run
directory of ``hotcold run``) holds

* ``.hotcold.lock``: locked (``flock``) by the process writing there, with its
  PID inside. A second writer fails at once and names the holder. The kernel
  drops the lock when the holder dies, so a lock left by a killed process is
  stale by construction and is simply taken over.
* ``hotcold.json``: what made the directory: its kind, the config, the
  inputs' hashes and the code version. A later run resumes only when all of
  these match; otherwise it stops and names each difference. ``overwrite``
  starts over, and only in a directory that hotcold made: a non-empty folder
  without ``hotcold.json`` is never written into, let alone cleared.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

from hotcold._io import atomic_write

LOCK_NAME = ".hotcold.lock"
RECORD_NAME = "hotcold.json"
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class OutputDirError(ValueError):
    """An output directory cannot be used as asked; the message names the problem and the fix."""


def check_plain_name(value: str, what: str) -> str:
    """``value`` when it is a plain name (letters, digits, ``._-``; no path, no ``..``), else ValueError."""
    if not isinstance(value, str) or not _PLAIN_NAME.match(value) or ".." in value:
        raise ValueError(f"{what} must be a plain name of letters, digits, '.', '_' and '-' (no '/' or '..'), "
                         f"got {value!r}")
    return value


def file_digest(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex, first 16 characters): how inputs are identified."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def array_digest(*arrays) -> str:
    """SHA-256 of numpy arrays' shapes, dtypes and bytes (hex, first 16 characters)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a.tobytes()))
    return h.hexdigest()[:16]


class DirectoryLock:
    """An exclusive ``flock`` on ``<directory>/.hotcold.lock`` for as long as the context is open."""

    def __init__(self, directory: str | os.PathLike, holder: str) -> None:
        self.directory = Path(directory)
        self.holder = holder
        self._fh = None

    def __enter__(self) -> DirectoryLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / LOCK_NAME
        fh = open(path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                fh.close()
                raise
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise OutputDirError(f"{self.directory} is being written by another process ({owner}); wait for it "
                                 "to finish, or write to another directory") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}: {self.holder}\n")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc_info) -> None:
        if self._fh is not None:
            self._fh.seek(0)
            self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``key: old there, new now`` for every leaf where two nested dicts differ."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} there, {b!r} now")
    return out


def claim(directory: str | os.PathLike, identity: dict, *, overwrite: bool = False,
          fix: str = "pass --overwrite to start over, or choose another output directory") -> bool:
    """Make ``directory`` this run's, or confirm it already is; True when it resumes earlier work.

    Parameters
    ----------
    identity:
        JSON-able description of what makes the output: ``kind``, ``config``,
        ``inputs`` (hashes) and ``code_version``. Stored as ``hotcold.json``.
    overwrite:
        Start over when the directory holds another run: its contents are
        removed, which is allowed only in a directory hotcold made.
    fix:
        How the user resolves a mismatch, in the terms of the caller (CLI flags).

    Raises
    ------
    OutputDirError
        When the directory is a file, a foreign non-empty folder, or holds a
        run that differs from ``identity`` (each difference named) and
        ``overwrite`` is False.
    """
    directory = Path(directory)
    identity = json.loads(json.dumps(identity, default=str))  # what a reader will see
    record = directory / RECORD_NAME
    if directory.exists() and not directory.is_dir():
        raise OutputDirError(f"{directory} is a file, not a directory; choose another output directory")
    contents = [p for p in directory.iterdir() if p.name != LOCK_NAME] if directory.is_dir() else []
    if contents and not record.is_file():
        raise OutputDirError(f"{directory} is not empty and was not made by hotcold ({RECORD_NAME} is missing); "
                             "hotcold writes only into new or empty directories or its own: choose another one")
    if record.is_file():
        try:
            old = json.loads(record.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OutputDirError(f"{record} cannot be read ({exc}); {fix}") from None
        if old == identity:
            return True
        if not overwrite:
            listed = "; ".join(differences(old, identity)[:8])
            raise OutputDirError(f"{directory} holds other results ({listed}); {fix}")
        for p in contents:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write(record, json.dumps(identity, indent=2, sort_keys=True) + "\n")
    return False
