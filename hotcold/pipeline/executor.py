"""Executors: where an experiment's units run. In process, on local worker processes, or on a Dask cluster.

* ``local`` (default): units one after another in this process, in dependency
  order; no server, no Dask.
* ``processes``: a ``dask.distributed.LocalCluster`` of N single-threaded
  worker processes on this machine.
* ``dask``: an existing Dask scheduler (``scheduler: tcp://host:8786``), whose
  workers see the same run directory (a shared file system). docs/execution.md
  shows how to start them on Slurm and Kubernetes.

Every executor runs the same function on the same arguments
(:func:`hotcold.pipeline.units.execute`), so results do not depend on it. With
Dask, a unit whose worker dies is rescheduled (units resume from their own
checkpoints), a unit that fails ``retries + 1`` times stops the run naming its
key, and units already finished stay finished.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from hotcold.pipeline.units import Unit, execute

EXECUTORS = ("local", "processes", "dask")


class UnitFailed(RuntimeError):
    """A unit failed (after its retries); the message names its key and error."""


@dataclass(frozen=True)
class ExecutionSettings:
    """How and where units run (the YAML's ``execution:``, or ``--executor``, ``--workers``, ``--scheduler``)."""

    executor: str = "local"
    """``local``, ``processes`` or ``dask``."""
    workers: int = 2
    """Worker processes of ``processes``."""
    scheduler: str | None = None
    """Address of the Dask scheduler of ``dask``."""
    retries: int = 1
    """Extra tries of a unit that raised; a unit whose worker died is rescheduled by Dask regardless."""

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {self.workers!r}")
        if self.executor == "dask" and not self.scheduler:
            raise ValueError("executor 'dask' needs the scheduler's address, e.g. --scheduler tcp://host:8786")
        if self.executor != "dask" and self.scheduler:
            raise ValueError(f"a scheduler address is for executor 'dask', not {self.executor!r}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {self.retries!r}")


def topological(units: Sequence[Unit], known: set[str] = frozenset()) -> list[Unit]:
    """``units`` in an order where every unit comes after the ones it needs (stable otherwise).

    ``known``: keys outside ``units`` whose results exist already.
    """
    by_key = {u.key: u for u in units}
    if len(by_key) != len(units):
        raise ValueError("unit keys must be unique")
    order, state = [], {}

    def visit(u: Unit) -> None:
        if state.get(u.key) == 2:
            return
        if state.get(u.key) == 1:
            raise ValueError(f"unit {u.key!r} depends on itself")
        state[u.key] = 1
        for k in u.needs:
            if k in known:
                continue
            if k not in by_key:
                raise ValueError(f"unit {u.key!r} needs {k!r}, which is not in the graph")
            visit(by_key[k])
        state[u.key] = 2
        order.append(u)

    for u in units:
        visit(u)
    return order


def run_units(units: Sequence[Unit], run_dir: Path, version: str, settings: ExecutionSettings, *,
              overwrite: bool = False, progress: bool = True, deadline: float | None = None,
              done: dict[str, dict] | None = None) -> dict[str, dict]:
    """Run the graph ``units``; returns every finished unit's result by key.

    ``done`` holds the results of units outside ``units`` that they may need
    (finished earlier).

    ``deadline`` (a ``time.time()``): no unit starts after it; the units
    running then finish, and the run stops cleanly (the rest resumes later).

    Raises
    ------
    UnitFailed
        Naming the key and error of a unit that failed after its retries.
    """
    done = dict(done or {})
    ordered = topological([u for u in units if u.key not in done], known=set(done))
    if not ordered:
        return {}
    with _progress(len(ordered), progress) as bar:
        if settings.executor == "local":
            return _run_local(ordered, run_dir, version, overwrite, bar, deadline, done)
        with _client(settings) as client:
            if progress and client.dashboard_link:
                print(f"[hotcold run] Dask dashboard: {client.dashboard_link}", flush=True)
            return _run_dask(client, ordered, run_dir, version, overwrite, settings.retries, bar, deadline, done)


def _run_local(ordered, run_dir, version, overwrite, bar, deadline, done) -> dict[str, dict]:
    results: dict[str, dict] = dict(done)
    for unit in ordered:
        if deadline is not None and time.time() > deadline:
            break
        if any(k not in results for k in unit.needs):
            continue
        bar.set_postfix_str(unit.key)
        try:
            results[unit.key] = execute(str(run_dir), unit, {k: results[k] for k in unit.needs}, version, overwrite)
        except Exception as exc:
            raise UnitFailed(f"unit {unit.key!r} failed: {type(exc).__name__}: {exc}") from exc
        bar.update(1)
    return {k: v for k, v in results.items() if k not in done}


def _run_dask(client, ordered, run_dir, version, overwrite, retries, bar, deadline, done) -> dict[str, dict]:
    from distributed import as_completed

    futures, results, pending = {}, {}, list(ordered)
    known = dict(done)
    waiting = as_completed()
    names: dict[str, str] = {}
    # No more units in flight than worker threads, so that a unit starts when it is submitted and the
    # deadline is checked for every unit.
    capacity = max(1, sum(client.nthreads().values()))

    def submit_ready() -> None:
        # A unit is submitted once everything it needs has finished and a worker thread is free.
        for unit in list(pending):
            if deadline is not None and time.time() > deadline:
                return
            if len(futures) - len(results) >= capacity:
                return
            if all(k in known for k in unit.needs):
                future = client.submit(execute, str(run_dir), unit, {k: known[k] for k in unit.needs}, version,
                                       overwrite, key=f"hotcold-{unit.key}-{time.time_ns()}", retries=retries,
                                       pure=False)
                futures[unit.key] = future
                names[future.key] = unit.key
                waiting.add(future)
                pending.remove(unit)

    submit_ready()
    for future in waiting:
        key = names[future.key]
        try:
            results[key] = known[key] = future.result()
        except Exception as exc:
            for f in futures.values():
                f.cancel()
            raise UnitFailed(f"unit {key!r} failed: {type(exc).__name__}: {exc}") from exc
        bar.set_postfix_str(key)
        bar.update(1)
        submit_ready()
    return results


@contextlib.contextmanager
def _client(settings: ExecutionSettings) -> Iterator:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ImportError("the processes and dask executors need Dask: pip install 'dask[distributed]' "
                          "(scripts/setup.sh installs it)") from exc
    if settings.executor == "processes":
        with LocalCluster(n_workers=settings.workers, threads_per_worker=1, processes=True,
                          dashboard_address=":0") as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(settings.scheduler, timeout="30s") as client:
            yield client


@contextlib.contextmanager
def _progress(total: int, show: bool):
    from tqdm import tqdm

    bar = tqdm(total=total, unit="unit", desc="units", disable=not show, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
