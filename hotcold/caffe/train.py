"""Train and fine-tune networks with pycaffe, as the paper does for LeNet (Sec. 5.2).

Sec. 5.2 trains three base LeNets for 10K iterations "using the training
parameters distributed with Caffe" (``prototxt/lenet_solver.prototxt``), with
"different random initializations/orderings", then fine-tunes each base net
three times for 20K iterations on "different random orderings" of the
adversarial training data. Here:

* the random initialization is the solver's ``random_seed``
  (:attr:`SolverSettings.seed <hotcold.caffe.solver.SolverSettings.seed>`);
* the data order is the order of the records in the training LMDB, because
  Caffe's ``Data`` layer reads an LMDB in key order and never shuffles: each
  ordering is its own shuffled copy (:func:`hotcold.caffe.lmdb_io.shuffled_copy`,
  :func:`hotcold.caffe.lmdb_io.write_shuffled_mix`);
* fine-tuning copies a base net's weights in before the first iteration
  (``init_weights``); how the learning rate goes on is ``lr_schedule``.

:func:`train` renders the solver (:mod:`hotcold.caffe.solver`), runs it,
snapshots, and resumes an interrupted run exactly where it stopped.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from google.protobuf.message import DecodeError
from tqdm import tqdm

from hotcold._io import atomic_write
from hotcold._version import __version__
from hotcold.caffe.lmdb_io import open_readonly
from hotcold.caffe.prototxt import check_weights, in_phase
from hotcold.caffe.runtime import caffe_pb2, check_device, import_caffe, set_device
from hotcold.caffe.solver import (
    SNAPSHOT_NAME,
    RenderedSolver,
    SolverSettings,
    as_model,
    check_lmdb,
    render_solver,
)
from hotcold.caffe.zoo import ModelSpec

PathLike = str | os.PathLike[str]

FINAL_WEIGHTS = "final.caffemodel"
TRAIN_RECORD = "train.json"
LOSS_WINDOW = 100
"""Iterations averaged into the reported training loss (Caffe's ``display`` interval)."""

_SNAPSHOT_RE = re.compile(rf"^{SNAPSHOT_NAME}_iter_(\d+)\.solverstate$")
_SETTINGS = ("model", "seed", "train_lmdb", "test_lmdb", "init_weights", "lr_schedule", "base_iter", "base_lr",
             "objective")

_log = logging.getLogger(__name__)


class TrainingObjective(Protocol):
    """A training objective other than the net's own loss, applied between Caffe's backward pass and its update.

    Caffe's ``Solver::Step`` clears the parameter diffs, runs forward and
    backward on the batch, calls ``on_gradients_ready`` callbacks, then applies
    the update (learning rate, momentum, weight decay). :func:`train` calls
    :meth:`on_gradients` there, so an objective rewrites the gradients of the
    batch before the update; the rendered net has ``force_backward`` so that
    the input blob's diff holds the input gradient.
    (:class:`hotcold.caffe.adversarial_training.AdversarialObjective`.)
    """

    @property
    def identity(self) -> dict:
        """What makes two objectives the same (recorded in ``train.json``; a resume must match)."""

    def on_gradients(self, net) -> None:
        """Rewrite ``net``'s parameter diffs after Caffe's forward and backward pass of one batch."""


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`."""

    weights: Path
    """``out_dir/final.caffemodel``: the trained weights after ``iterations``."""
    iterations: int
    """Solver iterations the weights have had (``max_iter``)."""
    seconds: float
    """Wall-clock seconds of solver steps, summed over every call that trained this run."""
    final_loss: float
    """Mean training loss over the last (up to) 100 iterations this call ran; when it ran
    none, the loss of one more training batch."""
    resumed: bool
    """This call restored a ``.solverstate`` snapshot and went on from there."""
    cached: bool
    """The finished run was already in ``out_dir``; Caffe did not run."""


def train(
    model: ModelSpec | str,
    out_dir: PathLike,
    settings: SolverSettings,
    *,
    train_lmdb: PathLike,
    test_lmdb: PathLike,
    init_weights: PathLike | None = None,
    objective: TrainingObjective | None = None,
    device: str = "cpu",
    progress: bool = False,
    log: logging.Logger | None = None,
) -> TrainResult:
    """Train a network with Caffe's SGD solver, resumably (Sec. 5.2).

    A base LeNet of Sec. 5.2: ``train("lenet", out, SolverSettings(seed=s,
    max_iter=10000), train_lmdb=<shuffled 60K>, test_lmdb=<10K>)``. A
    fine-tuning run: the same with a shuffled mix of adversarial training
    data, ``max_iter=20000`` and ``init_weights=<base net's final.caffemodel>``.

    ``out_dir`` holds the rendered prototxts, snapshots
    ``snapshot_iter_<N>.caffemodel``/``.solverstate`` every
    ``settings.snapshot_every`` iterations and at the end, ``final.caffemodel``
    (written atomically when done) and ``train.json`` (the run's settings,
    iterations, seconds and loss, rewritten at every snapshot). Calling again:

    * with the run finished at ``max_iter``: returns at once, Caffe does not run;
    * with a snapshot in ``out_dir``: restores the latest sound one and trains on
      to ``max_iter`` (also to extend a finished run). The data layer is moved
      to the record where the snapshot left it, so an interrupted run ends
      with the same weights as an uninterrupted one;
    * with other settings than the run in ``out_dir``: ``ValueError``.

    Parameters
    ----------
    model:
        A :class:`~hotcold.caffe.zoo.ModelSpec` or a model name (``"lenet"``).
    settings:
        Seed, iterations, learning rate schedule, snapshots (:class:`SolverSettings`).
    train_lmdb, test_lmdb:
        Datum LMDBs. ``test_lmdb`` only goes into the rendered net: train()
        switches Caffe's in-training test off (its results go to the silenced
        glog); measure with :func:`hotcold.pipeline.evaluation.error_rate`.
    init_weights:
        ``.caffemodel`` copied into the net before the first iteration (not when
        resuming): the base net for fine-tuning.
    objective:
        None: the net's own loss. Otherwise a :class:`TrainingObjective` that
        rewrites each batch's gradients before the update, e.g. the
        adversarial objective of Goodfellow et al.
        (:class:`~hotcold.caffe.adversarial_training.AdversarialObjective`).
    device:
        ``"cpu"``, ``"gpu"`` or ``"gpu:N"``, set in the calling thread.
    progress:
        Show a tqdm bar with the training loss.
    log:
        Logger for progress messages; default ``logging.getLogger("hotcold.caffe.train")``.
    """
    log = log or _log
    if not isinstance(settings, SolverSettings):
        raise TypeError(f"settings must be a SolverSettings, got {type(settings).__name__}")
    spec = as_model(model)
    out = Path(out_dir)
    max_iter = settings.max_iter
    check_device(device)
    check_lmdb("train_lmdb", train_lmdb)
    check_lmdb("test_lmdb", test_lmdb)
    if settings.lr_schedule == "continue" and init_weights is None:
        raise ValueError("lr_schedule='continue' goes on with a base net's schedule; pass the base net "
                         "as init_weights=, or use lr_schedule='restart'")
    if init_weights is not None and not Path(init_weights).is_file():
        raise ValueError(f"init_weights={str(init_weights)!r} does not exist; pass a base net's .caffemodel")
    identity = {  # what makes two calls the same run; max_iter may grow
        "model": spec.name, "seed": int(settings.seed), "train_lmdb": str(Path(train_lmdb).resolve()),
        "test_lmdb": str(Path(test_lmdb).resolve()),
        "init_weights": None if init_weights is None else str(Path(init_weights).resolve()),
        "lr_schedule": settings.lr_schedule,
        "base_iter": settings.effective_base_iter,
        "base_lr": None if settings.base_lr is None else float(settings.base_lr),
        "objective": None if objective is None else objective.identity,
    }
    record = _read_record(out / TRAIN_RECORD)
    if record is not None:
        _check_same_run(out, record, identity, max_iter)
        if record["complete"] and record["iterations"] == max_iter and (out / FINAL_WEIGHTS).is_file():
            log.info("%s: finished run found, %d iterations", out, max_iter)
            return TrainResult(out / FINAL_WEIGHTS, max_iter, record["seconds"], record["final_loss"],
                               resumed=False, cached=True)

    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    rendered = render_solver(spec, out, settings, train_lmdb=train_lmdb, test_lmdb=test_lmdb, test_interval=0,
                             solver_mode="CPU" if device == "cpu" else "GPU", force_backward=objective is not None)
    if objective is not None and rendered.solver.iter_size != 1:
        raise ValueError(f"{spec.solver_prototxt} has iter_size {rendered.solver.iter_size}; a training objective "
                         "sees one batch per update, so use iter_size 1")
    caffe = import_caffe()
    set_device(device)
    solver = caffe.get_solver(str(rendered.solver_path))
    if objective is not None:
        net = solver.net
        solver.add_callback(lambda: None, lambda: objective.on_gradients(net))
    param_shapes = {name: [tuple(b.data.shape) for b in blobs] for name, blobs in solver.net.params.items()}
    # A snapshot is the weights (.caffemodel) plus one or two history blobs per weight (.solverstate).
    snapshot_bytes = 3 * 4 * sum(math.prod(shape) for shapes in param_shapes.values() for shape in shapes) + (1 << 20)

    state = _latest_sound_snapshot(out, max_iter, param_shapes)
    resumed = state is not None
    if resumed:
        solver.restore(str(state))
        _replay_data(solver, rendered, solver.iter)
        log.info("%s: restored %s, training on to %d", out, state.name, max_iter)
    elif init_weights is not None:
        check_weights(init_weights, param_shapes)
        solver.net.copy_from(str(init_weights))
    if resumed and record is not None:
        seconds = float(record["seconds"])
    else:
        seconds = 0.0
        _write_record(out, identity, iterations=solver.iter, seconds=0.0, final_loss=math.nan, complete=False)

    losses: deque[float] = deque(maxlen=LOSS_WINDOW)
    bar = _progress_bar(progress, max_iter, solver.iter, out.name)
    start = time.perf_counter()
    try:
        while solver.iter < max_iter:
            if settings.snapshot_every and (solver.iter + 1) % settings.snapshot_every == 0:
                _check_free_space(out, snapshot_bytes, "snapshot")
            solver.step(1)  # Caffe snapshots inside step() at multiples of snapshot_every
            losses.append(_training_loss(solver.net))
            it = solver.iter
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(
                    f"training loss is {losses[-1]} at iteration {it} in {out}; the run diverged. "
                    "Lower base_lr, or check the training LMDB's labels")
            bar.update(1)
            if it % LOSS_WINDOW == 0 or it == max_iter:
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
                log.info("%s: iteration %d, loss %.4f, lr %.3g", out.name, it, np.mean(losses), solver.lr)
            if settings.snapshot_every and it % settings.snapshot_every == 0:
                _after_snapshot(out, identity, it, seconds + time.perf_counter() - start,
                                float(np.mean(losses)), settings.keep_snapshots)
    finally:
        bar.close()
    seconds += time.perf_counter() - start
    if not losses:
        losses.append(_training_loss(solver.net, forward=True))
    final_loss = float(np.mean(losses))
    _check_free_space(out, snapshot_bytes * 3 // 2, "final snapshot and weights")
    if not (settings.snapshot_every and max_iter % settings.snapshot_every == 0):
        solver.snapshot()
        _after_snapshot(out, identity, max_iter, seconds, final_loss, settings.keep_snapshots)
    tmp = out / (FINAL_WEIGHTS + ".tmp")
    solver.net.save(str(tmp))
    os.replace(tmp, out / FINAL_WEIGHTS)
    _write_record(out, identity, iterations=max_iter, seconds=seconds, final_loss=final_loss, complete=True)
    log.info("%s: done, %d iterations in %.0f s, loss %.4f", out, max_iter, seconds, final_loss)
    return TrainResult(out / FINAL_WEIGHTS, max_iter, seconds, final_loss, resumed=resumed, cached=False)


def _check_free_space(out: Path, needed: int, what: str) -> None:
    """OSError before Caffe writes a file that does not fit: Caffe itself would abort the process (a glog CHECK)."""
    free = shutil.disk_usage(out).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"{out} has {free / 2**20:.1f} MiB free, the {what} needs about "
                                    f"{needed / 2**20:.1f} MiB; free some space and run the same command again "
                                    "(training resumes from the last snapshot)")


# -- the run record (train.json) ---------------------------------------------------------
def _read_record(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); remove it to train this run afresh") from exc
    if not isinstance(record, dict) or not {"settings", "iterations", "seconds", "complete"} <= set(record):
        raise ValueError(f"{path} is not a hotcold training record; use another out_dir")
    return record


def _check_same_run(out: Path, record: dict, settings: dict, max_iter: int) -> None:
    differ = {k: (record["settings"].get(k), settings[k]) for k in _SETTINGS
              if record["settings"].get(k) != settings[k]}
    if differ:
        listed = ", ".join(f"{k}: {old!r} there, {new!r} now" for k, (old, new) in differ.items())
        raise ValueError(f"{out} holds another training run ({listed}); use a new out_dir or the same settings")
    if record["iterations"] > max_iter:
        raise ValueError(f"{out} already holds {record['iterations']} iterations; pass max_iter >= "
                         f"{record['iterations']} or use a new out_dir")


def _write_record(out: Path, settings: dict, *, iterations: int, seconds: float, final_loss: float,
                  complete: bool) -> None:
    record = {"settings": settings, "iterations": iterations, "seconds": round(seconds, 3),
              "final_loss": None if math.isnan(final_loss) else final_loss, "complete": complete,
              "hotcold_version": __version__}
    atomic_write(out / TRAIN_RECORD, (json.dumps(record, indent=2) + "\n").encode())


# -- snapshots -----------------------------------------------------------------------
def _snapshots(out: Path) -> list[tuple[int, Path]]:
    """``(iteration, .solverstate path)`` of every snapshot in ``out``, oldest first."""
    found = [(int(m.group(1)), p) for p in out.iterdir() if (m := _SNAPSHOT_RE.match(p.name))]
    return sorted(found)


def _after_snapshot(out: Path, settings: dict, iterations: int, seconds: float, loss: float,
                    keep: int | None) -> None:
    _write_record(out, settings, iterations=iterations, seconds=seconds, final_loss=loss, complete=False)
    if keep is not None:
        for _, state in _snapshots(out)[:-keep]:
            state.with_suffix(".caffemodel").unlink(missing_ok=True)
            state.unlink()


def _latest_sound_snapshot(out: Path, max_iter: int, param_shapes: dict[str, list[tuple[int, ...]]]) -> Path | None:
    """The newest snapshot up to ``max_iter`` that Caffe can restore without aborting.

    A snapshot cut short by a crash is skipped with a warning. Its
    ``learned_net`` is pointed at the ``.caffemodel`` beside it, so a moved
    ``out_dir`` still resumes.
    """
    for iteration, state_path in reversed(_snapshots(out)):
        if iteration > max_iter:
            continue
        problem = _snapshot_problem(state_path, iteration, param_shapes)
        if problem is None:
            return state_path
        warnings.warn(f"skipping snapshot {state_path}: {problem}", stacklevel=3)
    return None


def _snapshot_problem(state_path: Path, iteration: int, param_shapes: dict[str, list[tuple[int, ...]]]) -> str | None:
    weights = state_path.with_suffix(".caffemodel")
    try:
        check_weights(weights, param_shapes)
    except ValueError as exc:
        return str(exc)
    state = caffe_pb2().SolverState()
    try:
        state.ParseFromString(state_path.read_bytes())
    except DecodeError as exc:
        return f"not a SolverState ({exc})"
    if state.iter != iteration:
        return f"it holds iteration {state.iter}, its name says {iteration}"
    sizes = [math.prod(shape) for shapes in param_shapes.values() for shape in shapes]
    history = [len(blob.data) for blob in state.history]
    # SGD keeps one history blob per learnable blob; Adam and AdaDelta keep two.
    if not history or len(history) % len(sizes) or history != sizes * (len(history) // len(sizes)):
        return "its history blobs do not match the net's parameters"
    if state.learned_net != str(weights):
        state.learned_net = str(weights)
        atomic_write(state_path, state.SerializeToString())
    return None


# -- stepping ------------------------------------------------------------------------
def _replay_data(solver, rendered: RenderedSolver, iterations: int) -> None:
    """Move each training Data layer to the record an uninterrupted run would read next.

    A restored solver's Data layers start again at the first record. A Data
    layer cycles through its LMDB, so after ``k`` batches of ``b`` records it
    stands at ``k * b mod N``; the same position recurs every ``N / gcd(N, b)``
    batches, so at most that many data-layer forwards are needed.
    """
    train_phase = caffe_pb2().TRAIN
    sources = {layer.name: layer.data_param.source for layer in rendered.net.layer
               if layer.type == "Data" and in_phase(layer, train_phase)}
    batches = iterations * max(1, rendered.solver.iter_size)
    for name, layer in zip(solver.net._layer_names, solver.net.layers):
        if layer.type == "Data":
            with open_readonly(sources[name]) as env:
                records = int(env.stat()["entries"])
            batch = solver.net.blobs[solver.net.top_names[name][0]].data.shape[0]
            for _ in range(batches % (records // math.gcd(records, batch))):
                solver.net.forward(start=name, end=name)
        elif layer.type.endswith("Data"):
            warnings.warn(f"layer {name!r} ({layer.type}) restarts its data order after a resume; the run "
                          "will differ from an uninterrupted one", stacklevel=3)


def _training_loss(net, *, forward: bool = False) -> float:
    """The weighted sum of the net's loss outputs, as Caffe reports it (after a step, or a new forward)."""
    if forward:
        net.forward()
    weights = net.blob_loss_weights
    return float(sum(weights[name] * net.blobs[name].data.sum() for name in net.outputs if weights[name]))


def _progress_bar(show: bool, total: int, initial: int, desc: str) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not show, desc=desc, unit="it", dynamic_ncols=True)
