"""Work units: the pieces an experiment is cut into, each resumable and recorded.

A :class:`Unit` has a readable key (``train/base0``, ``generate/base1/shard002``),
a module-level function, its config slice and the keys of the units whose
results it takes. :func:`execute` runs one unit where it is scheduled (in
process, or on a Dask worker): it skips a unit whose manifest matches, runs the
function otherwise, and writes ``<run>/units/<key>.json`` atomically with the
config, the inputs' digests, the result, the code version, the seconds and the
host. Results are small JSON dicts: large outputs (LMDBs, caffemodels) live in
the run directory and are named by path.

A unit's manifest that differs from what the run asks for (another config,
other inputs, another code version) is an error naming the differences,
unless the run overwrites: then the unit is recomputed, and the log says so.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hotcold._guard import OutputDirError, differences
from hotcold._io import atomic_write


@dataclass(frozen=True)
class Unit:
    """One piece of work of an experiment's graph."""

    key: str
    """Readable and unique: ``stage/part[/shard]``."""
    func: Callable[..., dict]
    """A module-level function (Dask pickles it by reference): ``func(run_dir, inputs, **config) -> dict``,
    with every path in the result relative to the run directory (so a run can move between machines)."""
    config: dict = field(default_factory=dict)
    """The unit's slice of the experiment config, passed as keyword arguments; JSON-able."""
    needs: tuple[str, ...] = ()
    """Keys of the units whose results this one takes, as ``inputs[key]``."""
    owns: tuple[str, ...] = ()
    """Paths (relative to the run directory) that only this unit writes: cleared before the unit is
    recomputed with another config; kept (to resume from) when it was merely cut short."""
    local: dict = field(default_factory=dict)
    """Keyword arguments that depend on this machine, not on the experiment (the MNIST folder, the device,
    progress bars): passed to ``func`` but not recorded, so a run can be finished on another machine."""


def manifest_path(run_dir: Path, key: str) -> Path:
    """``<run>/units/<key>.json`` with the key's ``/`` kept as folders."""
    return Path(run_dir) / "units" / f"{key}.json"


def digest(value) -> str:
    """A short SHA-256 of a JSON-able value (config slices, unit results)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def read_manifest(run_dir: Path, key: str) -> dict | None:
    """The unit's manifest, or None when it has not completed."""
    path = manifest_path(run_dir, key)
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def recorded(run_dir: Path, unit: Unit, inputs: Mapping[str, dict], version: str, *,
             overwrite: bool) -> dict | None:
    """The result of a completed unit whose manifest matches, else None (recompute).

    Raises
    ------
    OutputDirError
        When the manifest records another config, other inputs or another
        code version and ``overwrite`` is False.
    """
    manifest = read_manifest(run_dir, unit.key)
    if manifest is None:
        return None
    want = _wanted(unit, inputs, version)
    have = {k: manifest.get(k) for k in want}
    if have != want:
        if overwrite:
            return None
        listed = "; ".join(differences(have, want)[:6])
        raise OutputDirError(f"unit {unit.key!r} in {run_dir} was computed differently ({listed}); pass "
                             "--overwrite to recompute it, or --out DIR for a new run directory")
    missing = [p for p in result_paths(manifest["result"]) if not (run_dir / p).exists()]
    if missing:
        return None  # e.g. an imported run without its LMDBs: regenerate, then check the hash
    return manifest["result"]


def execute(run_dir: str, unit: Unit, inputs: dict[str, dict], version: str, overwrite: bool) -> dict:
    """Run ``unit`` unless its manifest says it is done; returns its result (small, JSON-able).

    This is what an executor schedules. It must not depend on where it runs:
    everything it needs is in its arguments and the shared run directory. The
    result carries ``digest``, the digest of its content (LMDB records, weight
    blobs, file bytes): what the units that take it record as their input.
    """
    run_dir = Path(run_dir)
    done = recorded(run_dir, unit, inputs, version, overwrite=overwrite)
    if done is not None:
        return done
    want = _wanted(unit, inputs, version)
    previous = read_manifest(run_dir, unit.key)
    started = started_path(run_dir, unit.key)
    begun = json.loads(started.read_text()) if started.is_file() else None
    stale = any(r is not None and {k: r.get(k) for k in want} != want for r in (previous, begun))
    if stale:
        if not overwrite:
            raise OutputDirError(f"unit {unit.key!r} in {run_dir} was started with another config, other inputs "
                                 "or another code version; pass --overwrite to recompute it")
        for rel in unit.owns:  # another config's work: never resumed
            path = run_dir / rel
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    atomic_write(started, json.dumps(want, sort_keys=True) + "\n")
    start = time.time()
    result = unit.func(run_dir, {k: inputs[k] for k in unit.needs}, **unit.config, **unit.local)
    outcome = digest(_content(run_dir, result))
    expected = previous.get("result", {}).get("digest") if previous is not None and not stale else None
    if expected is not None and expected != outcome:
        manifest_path(run_dir, unit.key).unlink()  # what is on disk now is not what was recorded
        raise OutputDirError(f"unit {unit.key!r} was recomputed (its outputs were missing) and now differs from "
                             f"the recorded result ({expected} recorded, {outcome} now); the imported run and "
                             "this machine disagree: start a new run directory")
    result = {**result, "digest": outcome}
    atomic_write(manifest_path(run_dir, unit.key), json.dumps({
        "key": unit.key, "config": unit.config, "inputs": want["inputs"],
        "code_version": version, "result": result,
        "seconds": round(time.time() - start, 2), "host": socket.gethostname(), "pid": os.getpid(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }, indent=2, sort_keys=True, default=str) + "\n")
    return result


def _wanted(unit: Unit, inputs: Mapping[str, dict], version: str) -> dict:
    """What a matching manifest records: the config, the inputs' content digests, the code version."""
    return {"config": json.loads(json.dumps(unit.config, default=str)),
            "inputs": {k: inputs[k]["digest"] for k in unit.needs}, "code_version": version}


def started_path(run_dir: Path, key: str) -> Path:
    """``<run>/units/<key>.started.json``: what a unit began with, so that its partial work is never
    resumed under another config."""
    return Path(run_dir) / "units" / f"{key}.started.json"


def result_paths(result) -> list[str]:
    """Paths a result names (values of keys ending in ``_lmdb``, ``lmdb``, ``weights``, ``metadata``, ``path``)."""
    out = []
    if isinstance(result, dict):
        for k, v in result.items():
            if isinstance(v, str) and (k.endswith(("lmdb", "weights", "metadata", "path"))):
                out.append(v)
            else:
                out += result_paths(v)
    elif isinstance(result, list):
        for v in result:
            out += result_paths(v)
    return out


_HISTORY = ("forward_calls", "digest")
"""Result keys that describe how a unit ran (a resumed run counts fewer calls), not what it made."""


def _content(run_dir: Path, result):
    """What a result's digest covers: its values, with every named file replaced by its content's digest."""
    from hotcold._guard import file_digest
    from hotcold.caffe.lmdb_io import lmdb_digest
    from hotcold.caffe.prototxt import weights_digest

    def named(key: str, value):
        if not isinstance(value, str):
            return _content(run_dir, value)
        if key.endswith("lmdb"):
            return lmdb_digest(run_dir / value)
        if key.endswith("weights"):
            return weights_digest(run_dir / value)
        if key.endswith(("metadata", "path")):
            return file_digest(run_dir / value)
        return value

    if isinstance(result, dict):
        return {k: named(k, v) for k, v in result.items() if k not in _HISTORY}
    if isinstance(result, list):
        return [_content(run_dir, v) for v in result]
    return result
