"""What every run records about itself: the code version, and its progress lines."""
from __future__ import annotations

import subprocess
from pathlib import Path

from hotcold._version import __version__

_CHECKOUT = Path(__file__).resolve().parents[2]
"""The repository root when hotcold runs from a git checkout."""


def code_version() -> str:
    """hotcold's version plus the git commit of the working tree (``-dirty`` with uncommitted changes)."""
    if not (_CHECKOUT / ".git").exists():
        return __version__  # an installed hotcold: the version is all there is

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return __version__
    dirty = "-dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{__version__}+{commit}{dirty}"


def log(message: str) -> None:
    """A progress line of ``hotcold run``."""
    print(f"[hotcold run] {message}", flush=True)
