"""``hotcold run EXPERIMENT``: the experiment's graph of units, planned, run, exported and imported.

The run directory protects itself (:mod:`hotcold._guard`: one driver at a
time, one experiment and code version per directory). Before any work the plan
checks every unit's manifest: a unit computed with another config, other
inputs or another code version stops the run naming it (``--overwrite``
recomputes it). A finished unit is never recomputed; one whose outputs are
missing (an imported run carries no LMDBs) is recomputed only when a unit
that still has to run needs them, and must then hash the same as recorded.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import shutil
import time
from pathlib import Path

from hotcold._guard import RECORD_NAME, DirectoryLock, OutputDirError, claim, differences
from hotcold._io import atomic_write
from hotcold.caffe.runtime import require_gpu
from hotcold.data.mnist import find_mnist_source
from hotcold.pipeline.config import execution_settings, load_experiment
from hotcold.pipeline.executor import run_units, topological
from hotcold.pipeline.graph import build_units
from hotcold.pipeline.stages import code_version, log
from hotcold.pipeline.units import Unit, read_manifest, result_paths, started_path

RUNS_DIR = Path("runs")
"""Where run directories go by default: ``./runs/<experiment name>``, relative to the working directory."""


def run_experiment(experiment: str | os.PathLike, *, out: str | os.PathLike | None = None,
                   progress: bool = True, overwrite: bool = False, executor: str | None = None,
                   workers: int | None = None, scheduler: str | None = None, units: str | None = None,
                   max_hours: float | None = None, export: str | os.PathLike | None = None,
                   import_from: str | os.PathLike | None = None, device: str | None = None) -> Path:
    """Run (or resume) an experiment's units; returns the run directory.

    Parameters
    ----------
    experiment:
        A built-in experiment name (``mnist_quick``) or the path of an experiment YAML.
    out:
        The run directory; default ``./runs/<name>``.
    progress:
        Show progress bars.
    overwrite:
        Start over in a run directory of another experiment or code version,
        and recompute the units whose configuration changed.
    executor, workers, scheduler:
        Override the YAML's ``execution:`` (``local``, ``processes``, ``dask``).
    units:
        Run only the units whose keys match this pattern (``fnmatch``, e.g.
        ``train/*``), with the units they need.
    max_hours:
        Start no unit after this many hours; running units finish and the run
        stops cleanly, to be resumed.
    export:
        Afterwards, copy the finished units' small outputs (manifests, weights,
        the report; no LMDB) into this folder.
    import_from:
        Before running, take an exported folder's units into the run directory.
    device:
        Override the YAML's ``device:`` (``cpu``, ``gpu`` or ``gpu:N``) for the units that run Caffe here.
        Not part of any unit's config: a unit's result does not name the device it ran on.
    """
    exp = load_experiment(experiment, device=device)
    settings = execution_settings(exp, executor=executor, workers=workers, scheduler=scheduler)
    if exp.device != "cpu" and settings.executor in ("local", "processes"):
        require_gpu(exp.device)  # the units run here: a missing GPU fails now, not after the data unit
    if max_hours is not None and not max_hours > 0:
        raise ValueError(f"--max-hours must be > 0, got {max_hours}")
    version = code_version()  # the code that runs now, whatever is committed meanwhile
    run_dir = (Path(out) if out else RUNS_DIR / exp.name).absolute()
    graph = experiment_units(exp, progress=progress and settings.executor == "local")
    if units is not None:
        graph = _select(graph, units)
    with DirectoryLock(run_dir, f"run {exp.name}"):
        identity = {"kind": "hotcold run", "experiment": exp.name, "code_version": version}
        claim(run_dir, identity, overwrite=overwrite,
              fix="pass --overwrite to start over, or --out DIR for a new run directory")
        if import_from is not None:
            _import(Path(import_from), run_dir, identity)
        atomic_write(run_dir / "experiment.resolved.json", json.dumps(dataclasses.asdict(exp), indent=2))
        done, todo = plan(graph, run_dir, version, overwrite=overwrite)
        log(f"{len(graph)} units: {len(done)} done, {len(todo)} to run ({settings.executor} executor)")
        deadline = None if max_hours is None else time.time() + 3600 * max_hours
        started = time.time()
        results = run_units(todo, run_dir, version, settings, overwrite=overwrite, progress=progress,
                            deadline=deadline, done=done)
        left = [u.key for u in todo if u.key not in results]
        if left:
            log(f"stopped after {(time.time() - started) / 3600:.2f} h with {len(left)} units left "
                f"(first: {left[0]}); the same command resumes")
        else:
            log(f"done in {time.time() - started:.0f} s")
        if export is not None:
            _export(run_dir, Path(export), identity)
    if "report" in results or "report" in done:
        print((run_dir / "report" / _MAIN_TABLE[exp.kind]).read_text())
    return run_dir


_MAIN_TABLE = {"mnist_table1": "table1.md", "imagenet_fig3": "fig3.md", "imagenet_hp": "finetune.md"}
"""The report file a finished run prints, per experiment kind."""


def experiment_units(exp, *, progress: bool) -> list[Unit]:
    """The experiment's graph of units, by its ``kind``."""
    if exp.kind == "imagenet_fig3":
        from hotcold.pipeline.imagenet import build_fig3_units

        return build_fig3_units(exp, progress=progress)
    if exp.kind == "imagenet_hp":
        from hotcold.pipeline.imagenet import build_hp_units

        return build_hp_units(exp, progress=progress)
    return build_units(exp, source=str(find_mnist_source(exp.data.source)), progress=progress)


def _select(graph: list[Unit], pattern: str) -> list[Unit]:
    by_key = {u.key: u for u in graph}
    chosen = {u.key for u in graph if fnmatch.fnmatchcase(u.key, pattern)}
    if not chosen:
        raise ValueError(f"--units {pattern!r} matches no unit; keys look like: "
                         f"{', '.join(u.key for u in graph[:6])}, ...")
    stack = list(chosen)
    while stack:
        for k in by_key[stack.pop()].needs:
            if k not in chosen:
                chosen.add(k)
                stack.append(k)
    return [u for u in graph if u.key in chosen]


def plan(graph: list[Unit], run_dir: Path, version: str, *, overwrite: bool) -> tuple[dict[str, dict], list[Unit]]:
    """(results of the units that need not run, the units that must run), before any work.

    Raises
    ------
    OutputDirError
        Naming a unit whose manifest records another config, other inputs or
        another code version, unless ``overwrite`` (then it is recomputed and logged).
    """
    ordered = topological(graph)
    recorded: dict[str, dict] = {}
    present: dict[str, bool] = {}
    for unit in ordered:
        manifest = read_manifest(run_dir, unit.key)
        if any(k not in recorded for k in unit.needs):
            continue
        want = {"config": json.loads(json.dumps(unit.config, default=str)),
                "inputs": {k: recorded[k]["digest"] for k in unit.needs}, "code_version": version}
        if manifest is None:
            begun = started_path(run_dir, unit.key)
            before = json.loads(begun.read_text()) if begun.is_file() else None
            if before is not None and before != want and not overwrite:
                raise OutputDirError(f"unit {unit.key!r} in {run_dir} was started with another config "
                                     f"({'; '.join(differences(before, want)[:6])}); pass --overwrite to start it "
                                     "again, or --out DIR for a new run directory")
            continue
        have = {k: manifest.get(k) for k in want}
        if have != want:
            listed = "; ".join(differences(have, want)[:6])
            if not overwrite:
                raise OutputDirError(f"unit {unit.key!r} in {run_dir} was computed differently ({listed}); pass "
                                     "--overwrite to recompute it, or --out DIR for a new run directory")
            log(f"{unit.key}: computed differently ({listed}); --overwrite: recomputing")
            continue
        recorded[unit.key] = manifest["result"]
        present[unit.key] = all((run_dir / p).exists() for p in result_paths(manifest["result"]))
    needed: set[str] = set()
    for unit in reversed(ordered):
        dependents_needed = any(unit.key in v.needs and v.key in needed for v in ordered)
        if unit.key not in recorded or (not present[unit.key] and dependents_needed):
            needed.add(unit.key)
    return ({k: v for k, v in recorded.items() if k not in needed}, [u for u in ordered if u.key in needed])


def _export(run_dir: Path, target: Path, identity: dict) -> None:
    """Manifests, weights and the report: what another machine needs to go on without redoing finished work."""
    if target.absolute() == run_dir or run_dir in target.absolute().parents:
        raise OutputDirError(f"--export {target} is inside the run directory; export to a folder of its own")
    claim(target, identity, fix="export into a new folder")  # an empty folder, or an export of this same run
    files = [run_dir / "experiment.resolved.json"]
    files += sorted((run_dir / "units").rglob("*.json"))
    for path in (run_dir / "units").rglob("*.json"):
        if path.name.endswith(".started.json"):
            continue
        result = json.loads(path.read_text())["result"]
        for key in ("weights",):
            if isinstance(result, dict) and result.get(key):
                files.append(run_dir / result[key])
        if isinstance(result, dict) and "files" in result:
            files += [run_dir / f for f in result["files"]]
    for path in files:
        if path.is_file():
            dest = target / path.relative_to(run_dir)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest)
    log(f"exported {len(files)} files to {target} (no LMDBs: they are regenerated where needed)")


def _import(source: Path, run_dir: Path, identity: dict) -> None:
    record = source / RECORD_NAME
    if not record.is_file():
        raise OutputDirError(f"{source} is not a hotcold export ({RECORD_NAME} is missing); make one with "
                             "hotcold run ... --export DIR")
    theirs = json.loads(record.read_text())
    for key in ("experiment", "code_version"):
        if theirs.get(key) != identity[key]:
            raise OutputDirError(f"{source} holds {key} {theirs.get(key)!r}, this run is {identity[key]!r}; import "
                                 "only into the same experiment run with the same code version")
    copied = 0
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if path.is_file() and rel.name != RECORD_NAME and rel.name != "experiment.resolved.json":
            dest = run_dir / rel
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
                copied += 1
    log(f"imported {copied} files from {source}")

