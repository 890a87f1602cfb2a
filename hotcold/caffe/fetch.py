"""Model Zoo weights on disk: resumable, SHA-1-verified downloads and installs (``hotcold models fetch``).

A file reaches its final name only through ``os.replace`` after its SHA-1
matched, so a path that exists is a verified file. On the way it is
``<name>.part`` beside the target: an interrupted download leaves the part,
and the next call asks the server for the rest (HTTP ``Range``). A complete
file with another checksum is renamed ``<name>.sha1-mismatch`` and reported,
never installed and never resumed. One fetch at a time writes into a folder
(``hotcold._guard.DirectoryLock``). Only the standard library's ``urllib`` is
used.

Where installed weights live: :func:`models_dir` (``$HOTCOLD_MODELS_DIR``, by
default ``~/.cache/hotcold/models``), one folder per model;
:meth:`hotcold.caffe.zoo.ModelSpec.weights_path` names the file.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotcold._guard import DirectoryLock

MODELS_DIR_ENV = "HOTCOLD_MODELS_DIR"
"""Environment variable naming the folder of installed weights."""
PART_SUFFIX = ".part"
MISMATCH_SUFFIX = ".sha1-mismatch"
_SHA1 = re.compile(r"[0-9a-f]{40}")
_CHUNK = 1 << 20

Progress = Callable[[int, "int | None"], None]
"""Called with (bytes on disk, total bytes or None) as a download goes on."""


class FetchError(RuntimeError):
    """A download or install that did not end with a verified file; the message says what to do."""


@dataclass(frozen=True)
class FetchResult:
    """A verified weights file in place."""

    path: Path
    """The installed file."""
    sha1: str
    """Its SHA-1 (the expected one)."""
    how: str
    """``"downloaded"``, ``"resumed"`` (a ``.part`` was continued), ``"installed"`` (``--from``) or
    ``"present"`` (already there and verified)."""
    note: str = ""
    """Something the user should know, e.g. a bad file set aside; empty when nothing happened."""


def models_dir() -> Path:
    """The folder of installed weights: ``$HOTCOLD_MODELS_DIR``, else ``~/.cache/hotcold/models``."""
    configured = os.environ.get(MODELS_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hotcold" / "models"


def check_sha1(value: str, what: str = "sha1") -> str:
    """``value`` when it is 40 lower-case hex digits, else a ValueError."""
    if not isinstance(value, str) or not _SHA1.fullmatch(value):
        raise ValueError(f"{what} must be a SHA-1 of 40 lower-case hex digits, got {value!r}")
    return value


def sha1_of(path: str | os.PathLike) -> str:
    """SHA-1 (hex) of a file's bytes."""
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, sha1: str, *, timeout: float = 60.0,
             progress: Progress | None = None) -> FetchResult:
    """Download ``url`` to ``dest``, resuming ``dest.part``, and install it only if its SHA-1 is ``sha1``.

    Raises
    ------
    FetchError
        Offline or unreachable server, an HTTP error, an interrupted transfer
        (the part is kept; calling again resumes), or a checksum mismatch (the
        file is set aside as ``<name>.sha1-mismatch``).
    """
    check_sha1(sha1)
    dest = Path(dest)
    with DirectoryLock(dest.parent, f"hotcold models fetch {dest.name}"):
        note = ""
        if dest.exists():
            if sha1_of(dest) == sha1:
                return FetchResult(dest, sha1, "present")
            note = (f"the existing {dest.name} had another SHA-1; it was moved to {_set_aside(dest)} and "
                    "downloaded again")
        part = dest.with_name(dest.name + PART_SUFFIX)
        offset = part.stat().st_size if part.is_file() else 0
        resumed = _transfer(url, part, offset, timeout, progress)
        return FetchResult(_install_part(part, dest, sha1, origin=url), sha1,
                           "resumed" if resumed else "downloaded", note)


def install(source: str | os.PathLike, dest: str | os.PathLike, sha1: str) -> FetchResult:
    """Copy a user's file ``source`` to ``dest`` if its SHA-1 is ``sha1``; ``source`` itself is never changed."""
    check_sha1(sha1)
    source, dest = Path(source), Path(dest)
    if not source.is_file():
        raise FetchError(f"--from {source}: no such file; pass the path of the downloaded .caffemodel")
    actual = sha1_of(source)
    if actual != sha1:
        raise FetchError(f"{source} has SHA-1 {actual}, not the published {sha1}: it is another file or a damaged "
                         "copy (an interrupted download, an HTML error page). Nothing was installed; download it "
                         "again and retry")
    with DirectoryLock(dest.parent, f"hotcold models fetch {dest.name}"):
        if dest.exists() and dest.samefile(source):
            return FetchResult(dest, sha1, "present")
        part = dest.with_name(dest.name + PART_SUFFIX)
        shutil.copyfile(source, part)
        return FetchResult(_install_part(part, dest, sha1, origin=str(source)), sha1, "installed")


def _set_aside(path: Path) -> Path:
    aside = path.with_name(path.name.removesuffix(PART_SUFFIX) + MISMATCH_SUFFIX)
    os.replace(path, aside)
    return aside


def _transfer(url: str, part: Path, offset: int, timeout: float, progress: Progress | None) -> bool:
    """Append the rest of ``url`` to ``part`` (which holds ``offset`` bytes); True when it resumed."""
    headers = {"User-Agent": "hotcold", **({"Range": f"bytes={offset}-"} if offset else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return True  # nothing after ``offset``: the part is whole, the checksum decides
        raise FetchError(f"{url} answered HTTP {exc.code} {exc.reason}. Check the URL in the model YAML, or "
                         "download the file by hand and install it with --from FILE") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FetchError(f"cannot reach {url} ({reason}): offline, or the server is down. "
                         f"{_resume_hint(part, offset)}Run the command again when online, or download the file on "
                         "a machine with internet and install it with --from FILE") from None
    with response:
        if offset and response.status != 206:
            offset = 0  # the server ignored Range and sends the whole file
        elif offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            raise FetchError(f"{url} answered a resume at byte {offset} with Content-Range "
                             f"{response.headers.get('Content-Range')!r}; delete {part} and fetch again")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        done = offset
        try:
            with open(part, "ab" if offset else "wb") as fh:
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    fh.write(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(_stopped(url, part, done, total, f" ({exc!r})")) from None
    if total is not None and done != total:
        raise FetchError(_stopped(url, part, done, total, ""))
    return bool(offset)


def _resume_hint(part: Path, size: int) -> str:
    if size and part.is_file():
        return f"The {part.stat().st_size} bytes so far are kept in {part}; the same command resumes from there. "
    return ""


def _stopped(url: str, part: Path, done: int, total: int | None, why: str) -> str:
    return (f"the download of {url} stopped after {done} of {total or 'unknown'} bytes{why}. "
            + _resume_hint(part, done).rstrip())


def _install_part(part: Path, dest: Path, sha1: str, *, origin: str) -> Path:
    """Rename a complete ``part`` to ``dest`` if its SHA-1 matches; else set it aside and raise FetchError."""
    actual = sha1_of(part)
    if actual != sha1:
        aside = _set_aside(part)
        raise FetchError(f"the file from {origin} has SHA-1 {actual}, not the published {sha1}; it was not "
                         f"installed and is kept as {aside} for inspection (delete it when done). A proxy or "
                         "captive portal may have answered instead of the server, or the file changed upstream; "
                         "run the command again to download it afresh")
    os.replace(part, dest)
    return dest
