"""``hotcold run EXPERIMENT``: resolve the experiment and its run directory, then run its stages."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from hotcold._io import atomic_write
from hotcold.pipeline.config import load_experiment
from hotcold.pipeline.stages import code_version
from hotcold.pipeline.table1 import Table1Run

RUNS_DIR = Path("runs")
"""Where run directories go by default: ``./runs/<experiment name>``, relative to the working directory."""


def run_experiment(experiment: str | os.PathLike, *, out: str | os.PathLike | None = None,
                   progress: bool = True) -> Path:
    """Run (or resume) every stage of an experiment; returns the run directory.

    Parameters
    ----------
    experiment:
        A built-in experiment name (``mnist_quick``) or the path of an experiment YAML.
    out:
        The run directory; default ``./runs/<name>``.
    progress:
        Show progress bars.
    """
    exp = load_experiment(experiment)
    version = code_version()  # the code that runs now, whatever is committed meanwhile
    run_dir = Path(out) if out else RUNS_DIR / exp.name
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "experiment.resolved.json", json.dumps(dataclasses.asdict(exp), indent=2))
    Table1Run(exp, run_dir, version, progress=progress).run()
    return run_dir
