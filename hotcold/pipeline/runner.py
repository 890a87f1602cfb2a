"""``hotcold run EXPERIMENT``: resolve the experiment and its run directory, then run its stages."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from hotcold._guard import DirectoryLock, claim
from hotcold._io import atomic_write
from hotcold.pipeline.config import load_experiment
from hotcold.pipeline.stages import code_version
from hotcold.pipeline.table1 import Table1Run

RUNS_DIR = Path("runs")
"""Where run directories go by default: ``./runs/<experiment name>``, relative to the working directory."""


def run_experiment(experiment: str | os.PathLike, *, out: str | os.PathLike | None = None,
                   progress: bool = True, overwrite: bool = False) -> Path:
    """Run (or resume) every stage of an experiment; returns the run directory.

    The run directory protects itself (:mod:`hotcold._guard`): one process at
    a time; it resumes only the same experiment with the same code version;
    a stage started with another configuration stops the run with the
    differences named.

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
        and redo the stages whose configuration changed.
    """
    exp = load_experiment(experiment)
    version = code_version()  # the code that runs now, whatever is committed meanwhile
    run_dir = Path(out) if out else RUNS_DIR / exp.name
    with DirectoryLock(run_dir, f"run {exp.name}"):
        claim(run_dir, {"kind": "hotcold run", "experiment": exp.name, "code_version": version},
              overwrite=overwrite, fix="pass --overwrite to start over, or --out DIR for a new run directory")
        atomic_write(run_dir / "experiment.resolved.json", json.dumps(dataclasses.asdict(exp), indent=2))
        Table1Run(exp, run_dir, version, progress=progress, overwrite=overwrite).run()
    return run_dir
