"""Train and fine-tune networks with pycaffe, as the paper does for LeNet (Sec. 5.2).

Sec. 5.2 trains three base LeNets for 10K iterations "using the training
parameters distributed with Caffe" (``prototxt/lenet_solver.prototxt``), with
"different random initializations/orderings", then fine-tunes each base net
three times for 20K iterations on "different random orderings" of the
adversarial training data. Here:

* the random initialization is the solver's ``random_seed`` (``seed``);
* the data order is the order of the records in the training LMDB, because
  Caffe's ``Data`` layer reads an LMDB in key order and never shuffles: each
  ordering is its own shuffled copy (:func:`shuffled_copy`,
  :func:`hotcold.lmdb_io.write_shuffled_mix`);
* fine-tuning copies a base net's weights in before the first iteration
  (``init_weights``); how the learning rate goes on is ``lr_schedule``.

:func:`render_solver` fills in the model's solver and net prototxts and
checks everything Caffe would otherwise abort the process on (a glog
``CHECK``). :func:`train` runs the solver, snapshots, and resumes an
interrupted run exactly where it stopped.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import time
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import lmdb
import numpy as np
from google.protobuf import text_format
from google.protobuf.message import DecodeError
from tqdm import tqdm

from hotcold import __version__
from hotcold._caffe import caffe_pb2, import_caffe, set_device
from hotcold._io import atomic_write
from hotcold.caffe_net import CaffeClassifier
from hotcold.lmdb_io import write_shuffled_mix
from hotcold.models import ModelSpec, load_model
from hotcold.prototxt import check_weights

PathLike = str | os.PathLike[str]

# Placeholders of the model prototxts that render_solver substitutes.
TRAIN_LMDB = "TRAIN_LMDB"
TEST_LMDB = "TEST_LMDB"
NET_PROTOTXT = "NET_PROTOTXT"
SNAPSHOT_PREFIX = "SNAPSHOT_PREFIX"

LR_SCHEDULES = ("restart", "continue")
"""Readings of the fine-tuning learning rate; see :func:`render_solver`."""

FINAL_WEIGHTS = "final.caffemodel"
TRAIN_RECORD = "train.json"
LOSS_WINDOW = 100
"""Iterations averaged into the reported training loss (Caffe's ``display`` interval)."""

_SNAPSHOT_NAME = "snapshot"
_SNAPSHOT_RE = re.compile(rf"^{_SNAPSHOT_NAME}_iter_(\d+)\.solverstate$")
_SOLVER_MODES = ("CPU", "GPU")
_SEED_FIX = "the solver's random_seed; Sec. 5.2's three base nets need three seeds, e.g. 0, 1, 2"
_MAX_ITER_FIX = "the paper trains 10000 (base) and 20000 (fine-tuning) iterations"
_SETTINGS = ("model", "seed", "train_lmdb", "test_lmdb", "init_weights", "lr_schedule", "base_iter", "base_lr")

_log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class _Rendered:
    solver_path: Path
    solver: object  # caffe_pb2.SolverParameter
    net: object  # caffe_pb2.NetParameter


def continued_inv_schedule(base_lr: float, gamma: float, power: float, base_iter: int) -> tuple[float, float]:
    """``(base_lr', gamma')`` whose ``inv`` schedule starts where iteration ``base_iter`` was.

    Caffe's ``inv`` policy is ``lr(i) = base_lr * (1 + gamma * i) ** -power``.
    With ``base_lr' = base_lr * (1 + gamma * b) ** -power`` and
    ``gamma' = gamma / (1 + gamma * b)``, ``lr'(i) = lr(b + i)`` for every ``i``,
    because ``1 + gamma' * i = (1 + gamma * (b + i)) / (1 + gamma * b)``.
    """
    scale = 1.0 + gamma * base_iter
    return base_lr * scale ** -power, gamma / scale


def render_solver(
    model: ModelSpec | str,
    out_dir: PathLike,
    *,
    train_lmdb: PathLike,
    test_lmdb: PathLike,
    seed: int,
    max_iter: int,
    base_lr: float | None = None,
    lr_schedule: str = "restart",
    base_iter: int | None = None,
    snapshot: int | None = None,
    test_interval: int | None = None,
    test_iter: int | None = None,
    solver_mode: str = "CPU",
) -> Path:
    """Write ``out_dir/solver.prototxt`` and ``out_dir/train_test.prototxt`` for a run.

    The model's solver and train/test prototxts (``prototxt/lenet_*.prototxt``
    for LeNet: Caffe's distributed LeNet solver, which Sec. 5.2 uses) are
    parsed, their placeholders ``TRAIN_LMDB``, ``TEST_LMDB``, ``NET_PROTOTXT``
    and ``SNAPSHOT_PREFIX`` (``out_dir/snapshot``) substituted, and both files
    written atomically. Paths are written absolute.

    Parameters
    ----------
    model:
        A :class:`~hotcold.models.ModelSpec` or a model name (``"lenet"``).
    out_dir:
        Directory of the run; created when missing.
    train_lmdb, test_lmdb:
        Datum LMDB directories (see :mod:`hotcold.lmdb_io`).
    seed:
        The solver's ``random_seed``: the random initialization. Sec. 5.2's three
        base LeNets differ in it and in the data order (a shuffled LMDB per net).
    max_iter:
        Solver iterations: 10000 for the paper's base nets, 20000 for fine-tuning.
    base_lr:
        Replaces the solver's ``base_lr`` (0.01 for LeNet); ``None`` keeps it.
    lr_schedule:
        The paper does not say how the learning rate goes on when fine-tuning.
        ``"restart"`` (default) runs the solver's schedule from iteration 0, as
        ``caffe train --weights`` does. ``"continue"`` goes on with the ``inv``
        schedule from iteration ``base_iter`` of the base net
        (:func:`continued_inv_schedule`; ``inv`` policies only).
    base_iter:
        Iterations the base net was trained for (10000 in Sec. 5.2); required
        with ``lr_schedule="continue"``, ignored by ``"restart"`` (so a caller
        can pass it either way).
    snapshot:
        Replaces the solver's ``snapshot`` interval; 0 switches snapshots off.
    test_interval, test_iter:
        Replace the solver's test settings. ``test_interval=0`` removes the
        test net altogether (Caffe then never tests; pycaffe would discard the
        results anyway).
    solver_mode:
        ``"CPU"`` or ``"GPU"`` (pycaffe follows :func:`caffe.set_mode_*`; the
        field keeps the file usable with the ``caffe`` tool).

    Returns
    -------
    Path
        ``out_dir/solver.prototxt``.

    Raises
    ------
    ValueError
        Naming the parameter and the fix, for any value Caffe would abort on.
    """
    return _render(model, out_dir, train_lmdb=train_lmdb, test_lmdb=test_lmdb, seed=seed, max_iter=max_iter,
                   base_lr=base_lr, lr_schedule=lr_schedule, base_iter=base_iter, snapshot=snapshot,
                   test_interval=test_interval, test_iter=test_iter, solver_mode=solver_mode).solver_path


def train(
    model: ModelSpec | str,
    out_dir: PathLike,
    *,
    train_lmdb: PathLike,
    test_lmdb: PathLike,
    seed: int,
    max_iter: int,
    init_weights: PathLike | None = None,
    lr_schedule: str = "restart",
    base_iter: int | None = None,
    base_lr: float | None = None,
    snapshot_every: int = 1000,
    keep_snapshots: int | None = None,
    device: str = "cpu",
    progress: bool = False,
    log: logging.Logger | None = None,
) -> TrainResult:
    """Train a network with Caffe's SGD solver, resumably (Sec. 5.2).

    A base LeNet of Sec. 5.2: ``train("lenet", out, train_lmdb=<shuffled 60K>,
    test_lmdb=<10K>, seed=s, max_iter=10000)``. A fine-tuning run: the same
    with a shuffled mix of adversarial training data, ``max_iter=20000`` and
    ``init_weights=<base net's final.caffemodel>``.

    ``out_dir`` holds the rendered prototxts, snapshots
    ``snapshot_iter_<N>.caffemodel``/``.solverstate`` every ``snapshot_every``
    iterations and at the end, ``final.caffemodel`` (written atomically when
    done) and ``train.json`` (the run's settings, iterations, seconds and loss,
    rewritten at every snapshot). Calling again:

    * with the run finished at ``max_iter``: returns at once, Caffe does not run;
    * with a snapshot in ``out_dir``: restores the latest sound one and trains on
      to ``max_iter`` (also to extend a finished run). The data layer is moved
      to the record where the snapshot left it, so an interrupted run ends
      with the same weights as an uninterrupted one;
    * with other settings than the run in ``out_dir``: ``ValueError``.

    Parameters
    ----------
    model, train_lmdb, test_lmdb, seed, max_iter, base_lr, lr_schedule, base_iter:
        As for :func:`render_solver`. ``test_lmdb`` only goes into the rendered
        net: train() switches Caffe's in-training test off (its results go to
        the silenced glog); measure with :func:`error_rate`.
    init_weights:
        ``.caffemodel`` copied into the net before the first iteration (not when
        resuming): the base net for fine-tuning.
    snapshot_every:
        Iterations between snapshots; 0 snapshots only at the end.
    keep_snapshots:
        Keep only the newest this many snapshots (a LeNet snapshot is 3.4 MB);
        ``None`` keeps all.
    device:
        ``"cpu"``, ``"gpu"`` or ``"gpu:N"``.
    progress:
        Show a tqdm bar with the training loss.
    log:
        Logger for progress messages; default ``logging.getLogger("hotcold.train")``.
    """
    log = log or _log
    spec = _as_model(model)
    out = Path(out_dir)
    _check_int("snapshot_every", snapshot_every, 0, "e.g. snapshot_every=1000, or 0 for the end only")
    if keep_snapshots is not None:
        _check_int("keep_snapshots", keep_snapshots, 1, "or None to keep every snapshot")
    _check_int("seed", seed, 0, _SEED_FIX)
    _check_int("max_iter", max_iter, 1, _MAX_ITER_FIX)
    _check_lmdb("train_lmdb", train_lmdb)
    _check_lmdb("test_lmdb", test_lmdb)
    _check_schedule(base_lr, lr_schedule, base_iter)
    if lr_schedule == "continue" and init_weights is None:
        raise ValueError("lr_schedule='continue' goes on with a base net's schedule; pass the base net "
                         "as init_weights=, or use lr_schedule='restart'")
    if init_weights is not None and not Path(init_weights).is_file():
        raise ValueError(f"init_weights={str(init_weights)!r} does not exist; pass a base net's .caffemodel")
    settings = {  # what makes two calls the same run; max_iter may grow
        "model": spec.name, "seed": int(seed), "train_lmdb": str(Path(train_lmdb).resolve()),
        "test_lmdb": str(Path(test_lmdb).resolve()),
        "init_weights": None if init_weights is None else str(Path(init_weights).resolve()),
        "lr_schedule": lr_schedule,
        "base_iter": None if base_iter is None or lr_schedule != "continue" else int(base_iter),
        "base_lr": None if base_lr is None else float(base_lr),
    }
    record = _read_record(out / TRAIN_RECORD)
    if record is not None:
        _check_same_run(out, record, settings, max_iter)
        if record["complete"] and record["iterations"] == max_iter and (out / FINAL_WEIGHTS).is_file():
            log.info("%s: finished run found, %d iterations", out, max_iter)
            return TrainResult(out / FINAL_WEIGHTS, max_iter, record["seconds"], record["final_loss"],
                               resumed=False, cached=True)

    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    rendered = _render(spec, out, train_lmdb=train_lmdb, test_lmdb=test_lmdb, seed=seed, max_iter=max_iter,
                       base_lr=base_lr, lr_schedule=lr_schedule, base_iter=base_iter, snapshot=snapshot_every,
                       test_interval=0, test_iter=None, solver_mode="CPU" if device == "cpu" else "GPU")
    caffe = import_caffe()
    set_device(device)
    solver = caffe.get_solver(str(rendered.solver_path))
    param_shapes = {name: [tuple(b.data.shape) for b in blobs] for name, blobs in solver.net.params.items()}

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
        _write_record(out, settings, iterations=solver.iter, seconds=0.0, final_loss=math.nan, complete=False)

    losses: deque[float] = deque(maxlen=LOSS_WINDOW)
    bar = _progress_bar(progress, max_iter, solver.iter, out.name)
    start = time.perf_counter()
    try:
        while solver.iter < max_iter:
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
            if snapshot_every and it % snapshot_every == 0:
                _after_snapshot(out, settings, it, seconds + time.perf_counter() - start,
                                float(np.mean(losses)), keep_snapshots)
    finally:
        bar.close()
    seconds += time.perf_counter() - start
    if not losses:
        losses.append(_training_loss(solver.net, forward=True))
    final_loss = float(np.mean(losses))
    if not (snapshot_every and max_iter % snapshot_every == 0):
        solver.snapshot()
        _after_snapshot(out, settings, max_iter, seconds, final_loss, keep_snapshots)
    tmp = out / (FINAL_WEIGHTS + ".tmp")
    solver.net.save(str(tmp))
    os.replace(tmp, out / FINAL_WEIGHTS)
    _write_record(out, settings, iterations=max_iter, seconds=seconds, final_loss=final_loss, complete=True)
    log.info("%s: done, %d iterations in %.0f s, loss %.4f", out, max_iter, seconds, final_loss)
    return TrainResult(out / FINAL_WEIGHTS, max_iter, seconds, final_loss, resumed=resumed, cached=False)


def error_rate(classifier: CaffeClassifier, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    """Fraction of ``images`` that ``classifier`` misclassifies (the error rates of Table 1).

    Images go to :meth:`CaffeClassifier.classify` ``batch`` at a time, so large
    test sets (the 70K held-out adversarial images of Sec. 5.2) need no more
    memory than one batch of logits.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must hold one label per image ({len(images)}), got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("images is empty; an error rate needs at least one image")
    _check_int("batch", batch, 1, "e.g. batch=1000")
    wrong = sum(int(np.count_nonzero(classifier.classify(images[i:i + batch]) != labels[i:i + batch]))
                for i in range(0, len(labels), batch))
    return wrong / len(labels)


def shuffled_copy(src_lmdb: PathLike, out_path: PathLike, seed: int) -> Path:
    """A copy of ``src_lmdb`` in the random order ``seed``: one data ordering of Sec. 5.2.

    The order is :func:`hotcold.lmdb_io.write_shuffled_mix` with ``[src_lmdb]``.
    When ``out_path`` already exists (it only appears complete), it is checked
    against that order and reused.

    Raises
    ------
    ValueError
        When ``out_path`` holds something other than this copy.
    """
    out = Path(out_path)
    if not out.exists():
        write_shuffled_mix(out, [src_lmdb], seed)
        return out
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int (it fixes the ordering), got {seed!r}")
    with _open_lmdb(src_lmdb, "src_lmdb") as src, _open_lmdb(out, "out_path") as dst, \
            src.begin() as src_txn, dst.begin() as dst_txn:
        keys = list(src_txn.cursor().iternext(keys=True, values=False))
        if dst.stat()["entries"] != len(keys):
            raise ValueError(f"out_path={str(out)!r} holds {dst.stat()['entries']} records, {src_lmdb} "
                             f"{len(keys)}; remove it or choose another path")
        order = np.random.default_rng(seed).permutation(len(keys))
        # The first records pin the permutation: a wrong seed or source shows at once.
        for (_, value), picked in zip(dst_txn.cursor(), order[:32]):
            if value != src_txn.get(keys[picked]):
                raise ValueError(f"out_path={str(out)!r} is not {src_lmdb} shuffled with seed={seed}; "
                                 "remove it or choose another path")
    return out


# -- rendering -----------------------------------------------------------------------
def _render(model: ModelSpec | str, out_dir: PathLike, *, train_lmdb: PathLike, test_lmdb: PathLike, seed: int,
            max_iter: int, base_lr: float | None, lr_schedule: str, base_iter: int | None, snapshot: int | None,
            test_interval: int | None, test_iter: int | None, solver_mode: str) -> _Rendered:
    spec = _as_model(model)
    if spec.train_test_prototxt is None or spec.solver_prototxt is None:
        raise ValueError(f"model {spec.name!r} has no train_test_prototxt/solver_prototxt; "
                         f"add them to models/{spec.name}.yaml to train it")
    train_lmdb = _check_lmdb("train_lmdb", train_lmdb)
    test_lmdb = _check_lmdb("test_lmdb", test_lmdb)
    _check_int("seed", seed, 0, _SEED_FIX)
    _check_int("max_iter", max_iter, 1, _MAX_ITER_FIX)
    _check_schedule(base_lr, lr_schedule, base_iter)
    if snapshot is not None:
        _check_int("snapshot", snapshot, 0, "or 0 for no snapshots")
    if test_interval is not None:
        _check_int("test_interval", test_interval, 0, "or 0 for no testing")
    if test_iter is not None:
        _check_int("test_iter", test_iter, 1, "test batches per test, e.g. 100 for 10K images in batches of 100")
        if test_interval == 0:
            raise ValueError("test_iter is meaningless with test_interval=0 (no test net); drop one of them")
    if solver_mode not in _SOLVER_MODES:
        raise ValueError(f"solver_mode must be one of {_SOLVER_MODES}, got {solver_mode!r}")

    pb2 = caffe_pb2()
    net = _parse(pb2.NetParameter(), spec.train_test_prototxt)
    solver = _parse(pb2.SolverParameter(), spec.solver_prototxt)
    for placeholder, path in ((TRAIN_LMDB, train_lmdb), (TEST_LMDB, test_lmdb)):
        layers = [layer for layer in net.layer if layer.data_param.source == placeholder]
        if not layers:
            raise ValueError(f"{spec.train_test_prototxt} has no data layer with source {placeholder!r}; "
                             "put the placeholder there so the LMDB can be filled in")
        for layer in layers:
            layer.data_param.source = str(path)
    if solver.net != NET_PROTOTXT or solver.snapshot_prefix != SNAPSHOT_PREFIX:
        raise ValueError(f"{spec.solver_prototxt} must say net: {NET_PROTOTXT!r} and snapshot_prefix: "
                         f"{SNAPSHOT_PREFIX!r}, got {solver.net!r} and {solver.snapshot_prefix!r}")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    net_path, solver_path = out / "train_test.prototxt", out / "solver.prototxt"
    solver.net = str(net_path)
    solver.snapshot_prefix = str(out / _SNAPSHOT_NAME)
    solver.snapshot_format = pb2.SolverParameter.BINARYPROTO
    solver.random_seed = int(seed)
    solver.max_iter = int(max_iter)
    solver.solver_mode = getattr(pb2.SolverParameter, solver_mode)
    if base_lr is not None:
        solver.base_lr = float(base_lr)
    if lr_schedule == "continue":
        if solver.lr_policy != "inv":
            raise ValueError(f"lr_schedule='continue' is defined for lr_policy 'inv'; {spec.solver_prototxt} "
                             f"uses {solver.lr_policy!r}. Use lr_schedule='restart'")
        solver.base_lr, solver.gamma = continued_inv_schedule(solver.base_lr, solver.gamma, solver.power,
                                                              int(base_iter))
    if snapshot is not None:
        solver.snapshot = int(snapshot)
    if test_interval == 0:
        solver.ClearField("test_iter")
    if test_interval is not None:
        solver.test_interval = int(test_interval)
    if test_iter is not None:
        solver.ClearField("test_iter")
        solver.test_iter.append(int(test_iter))

    atomic_write(net_path, text_format.MessageToString(net).encode())
    atomic_write(solver_path, text_format.MessageToString(solver).encode())
    return _Rendered(solver_path, solver, net)


def _parse(message, path: Path):
    try:
        text_format.Merge(Path(path).read_text(), message)
    except (OSError, text_format.ParseError) as exc:
        raise ValueError(f"cannot read {path} as a Caffe {type(message).__name__}: {exc}") from exc
    return message


# -- validation ----------------------------------------------------------------------
def _as_model(model: ModelSpec | str) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise TypeError(f"model must be a ModelSpec or a model name such as 'lenet', got {type(model).__name__}")


def _check_int(name: str, value: object, minimum: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({fix})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value} ({fix})")


def _check_schedule(base_lr: float | None, lr_schedule: str, base_iter: int | None) -> None:
    if base_lr is not None and not (isinstance(base_lr, (int, float)) and math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"base_lr must be a positive number, got {base_lr!r}; LeNet's solver uses 0.01")
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
    if lr_schedule == "continue" and base_iter is None:
        raise ValueError("lr_schedule='continue' needs base_iter=, the base net's iterations "
                         "(10000 for Sec. 5.2's base LeNets)")
    if base_iter is not None:
        _check_int("base_iter", base_iter, 0, "the base net's iterations, e.g. 10000")


def _check_lmdb(name: str, path: PathLike) -> Path:
    path = Path(path).resolve()
    if not (path / "data.mdb").is_file():
        raise ValueError(f"{name}={str(path)!r} is not an LMDB directory (no data.mdb); write one with "
                         "hotcold.lmdb_io.write_datum_lmdb or shuffled_copy")
    with _open_lmdb(path, name) as env:
        if env.stat()["entries"] == 0:
            raise ValueError(f"{name}={str(path)!r} is an empty LMDB; Caffe's Data layer needs records")
    return path


def _open_lmdb(path: PathLike, name: str) -> lmdb.Environment:
    if not (Path(path) / "data.mdb").is_file():
        raise ValueError(f"{name}={str(path)!r} is not an LMDB directory (no data.mdb)")
    return lmdb.open(str(path), readonly=True, lock=False, subdir=True)


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
def _replay_data(solver, rendered: _Rendered, iterations: int) -> None:
    """Move each training Data layer to the record an uninterrupted run would read next.

    A restored solver's Data layers start again at the first record. A Data
    layer cycles through its LMDB, so after ``k`` batches of ``b`` records it
    stands at ``k * b mod N``; the same position recurs every ``N / gcd(N, b)``
    batches, so at most that many data-layer forwards are needed.
    """
    train_phase = caffe_pb2().TRAIN
    sources = {layer.name: layer.data_param.source for layer in rendered.net.layer
               if layer.type == "Data" and _in_phase(layer, train_phase)}
    batches = iterations * max(1, rendered.solver.iter_size)
    for name, layer in zip(solver.net._layer_names, solver.net.layers):
        if layer.type == "Data":
            with _open_lmdb(sources[name], f"source of layer {name}") as env:
                records = int(env.stat()["entries"])
            batch = solver.net.blobs[solver.net.top_names[name][0]].data.shape[0]
            for _ in range(batches % (records // math.gcd(records, batch))):
                solver.net.forward(start=name, end=name)
        elif layer.type.endswith("Data"):
            warnings.warn(f"layer {name!r} ({layer.type}) restarts its data order after a resume; the run "
                          "will differ from an uninterrupted one", stacklevel=3)


def _in_phase(layer, phase: int) -> bool:
    if any(rule.HasField("phase") and rule.phase != phase for rule in layer.include):
        return False
    return not any(rule.HasField("phase") and rule.phase == phase for rule in layer.exclude)


def _training_loss(net, *, forward: bool = False) -> float:
    """The weighted sum of the net's loss outputs, as Caffe reports it (after a step, or a new forward)."""
    if forward:
        net.forward()
    weights = net.blob_loss_weights
    return float(sum(weights[name] * net.blobs[name].data.sum() for name in net.outputs if weights[name]))


def _progress_bar(show: bool, total: int, initial: int, desc: str) -> tqdm:
    return tqdm(total=total, initial=initial, disable=not show, desc=desc, unit="it", dynamic_ncols=True)
