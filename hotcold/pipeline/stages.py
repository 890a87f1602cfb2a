"""Stages of an experiment run: a directory each, with the manifest that says it is done.

A stage writes ``started.json`` (its config) when it begins and
``manifest.json`` (config, inputs, outputs, code version, seconds) when it
completes. A re-run skips a stage whose manifest matches its config and
resumes one that started with the same config.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

from hotcold._guard import OutputDirError, differences
from hotcold._io import atomic_write
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


def config_hash(obj) -> str:
    """A short, stable hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stage:
    """A stage directory with a manifest.

    ``done`` when it completed with this config. A stage started with another
    config (``started.json`` differs) is another run's work: it is an error
    naming the differences, unless ``overwrite`` asks to clear and redo it.
    """

    def __init__(self, run_dir: Path, name: str, config, version: str, *, overwrite: bool = False) -> None:
        self.dir = run_dir / name
        self.version = version
        self.name = name
        self.config = config
        self.hash = config_hash(config)
        self.manifest = self.dir / "manifest.json"
        started = self.dir / "started.json"
        if started.exists():
            before = json.loads(started.read_text())
            if before.get("config_hash") != self.hash:
                now = json.loads(json.dumps(config, default=str))
                changes = "; ".join(differences(before.get("config", {}), now)[:6])
                if not overwrite:
                    raise OutputDirError(f"stage {name!r} in {run_dir} was started with another configuration "
                                         f"({changes}); pass --overwrite to redo this stage, or --out DIR for a "
                                         "new run directory")
                log(f"{name}: configuration changed ({changes}); --overwrite: clearing {self.dir}")
                shutil.rmtree(self.dir)
        if not started.exists():
            atomic_write(started, json.dumps({"config_hash": self.hash, "config": config}, indent=2, default=str))
        self.start = time.time()

    @property
    def done(self) -> bool:
        if not self.manifest.exists():
            return False
        data = json.loads(self.manifest.read_text())
        return data.get("status") == "complete" and data.get("config_hash") == self.hash

    def finish(self, inputs: dict, outputs: dict) -> None:
        data = {"stage": self.name, "status": "complete", "config": self.config, "config_hash": self.hash,
                "inputs": inputs, "outputs": outputs, "code_version": self.version,
                "seconds": round(time.time() - self.start, 1), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        atomic_write(self.manifest, json.dumps(data, indent=2, default=str))

    def outputs(self) -> dict:
        return json.loads(self.manifest.read_text())["outputs"]


def log(message: str) -> None:
    """A progress line of ``hotcold run``."""
    print(f"[hotcold run] {message}", flush=True)
