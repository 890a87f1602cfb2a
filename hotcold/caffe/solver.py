"""Solver settings and rendering: a model's solver and net prototxts filled in for one run (Sec. 5.2).

Sec. 5.2 trains the base LeNets "using the training parameters distributed
with Caffe" (``prototxt/lenet_solver.prototxt``) and fine-tunes them; what
differs between runs is one :class:`SolverSettings`. :func:`render_solver`
writes the run's prototxts and checks everything Caffe would otherwise abort
the process on (a glog ``CHECK``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from hotcold._io import atomic_write
from hotcold.caffe.lmdb_io import open_readonly
from hotcold.caffe.prototxt import parse_text
from hotcold.caffe.runtime import caffe_pb2
from hotcold.caffe.zoo import ModelSpec, load_model

PathLike = str | os.PathLike[str]

# Placeholders of the model prototxts that render_solver substitutes.
TRAIN_LMDB = "TRAIN_LMDB"
TEST_LMDB = "TEST_LMDB"
NET_PROTOTXT = "NET_PROTOTXT"
SNAPSHOT_PREFIX = "SNAPSHOT_PREFIX"
SNAPSHOT_NAME = "snapshot"
"""Snapshots are ``<run dir>/snapshot_iter_<N>.caffemodel`` / ``.solverstate``."""

LR_SCHEDULES = ("restart", "continue")
"""Readings of the fine-tuning learning rate; see :class:`SolverSettings`."""

_SOLVER_MODES = ("CPU", "GPU")
_SEED_FIX = "the solver's random_seed; Sec. 5.2's three base nets need three seeds, e.g. 0, 1, 2"
_MAX_ITER_FIX = "the paper trains 10000 (base) and 20000 (fine-tuning) iterations"


def check_int(name: str, value: object, minimum: int, fix: str) -> None:
    """TypeError for a non-int (bools too), ValueError below ``minimum``; both name ``fix``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r} ({fix})")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value} ({fix})")


@dataclass(frozen=True)
class SolverSettings:
    """What one training run changes in the model's solver (Sec. 5.2).

    A base LeNet: ``SolverSettings(seed=s, max_iter=10000)``; a fine-tuning
    run: ``SolverSettings(seed=s, max_iter=20000)`` with the base net as
    ``init_weights`` of :func:`hotcold.caffe.train.train`.
    """

    seed: int
    """The solver's ``random_seed``: the random initialization. Sec. 5.2's three
    base LeNets differ in it and in the data order (a shuffled LMDB per net)."""
    max_iter: int
    """Solver iterations: 10000 for the paper's base nets, 20000 for fine-tuning."""
    base_lr: float | None = None
    """Replaces the solver's ``base_lr`` (0.01 for LeNet); ``None`` keeps it."""
    lr_schedule: str = "restart"
    """The paper does not say how the learning rate goes on when fine-tuning.
    ``"restart"`` runs the solver's schedule from iteration 0, as ``caffe train
    --weights`` does. ``"continue"`` goes on with the ``inv`` schedule from
    iteration ``base_iter`` of the base net (:func:`continued_inv_schedule`)."""
    base_iter: int | None = None
    """Iterations the base net was trained for (10000 in Sec. 5.2); required
    with ``lr_schedule="continue"``, ignored by ``"restart"``."""
    snapshot_every: int = 1000
    """Iterations between snapshots; 0 snapshots only at the end."""
    keep_snapshots: int | None = None
    """Keep only the newest this many snapshots; ``None`` keeps all."""

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0, _SEED_FIX)
        check_int("max_iter", self.max_iter, 1, _MAX_ITER_FIX)
        check_int("snapshot_every", self.snapshot_every, 0, "e.g. snapshot_every=1000, or 0 for the end only")
        if self.keep_snapshots is not None:
            check_int("keep_snapshots", self.keep_snapshots, 1, "or None to keep every snapshot")
        base_lr = self.base_lr
        if base_lr is not None and not (isinstance(base_lr, (int, float)) and not isinstance(base_lr, bool)
                                        and math.isfinite(base_lr) and base_lr > 0):
            raise ValueError(f"base_lr must be a positive number, got {base_lr!r}; LeNet's solver uses 0.01")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr_schedule == "continue" and self.base_iter is None:
            raise ValueError("lr_schedule='continue' needs base_iter=, the base net's iterations "
                             "(10000 for Sec. 5.2's base LeNets)")
        if self.base_iter is not None:
            check_int("base_iter", self.base_iter, 0, "the base net's iterations, e.g. 10000")

    @property
    def effective_base_iter(self) -> int | None:
        """``base_iter`` where it matters (``"continue"``), else None."""
        return self.base_iter if self.lr_schedule == "continue" else None


def continued_inv_schedule(base_lr: float, gamma: float, power: float, base_iter: int) -> tuple[float, float]:
    """``(base_lr', gamma')`` whose ``inv`` schedule starts where iteration ``base_iter`` was.

    Caffe's ``inv`` policy is ``lr(i) = base_lr * (1 + gamma * i) ** -power``.
    With ``base_lr' = base_lr * (1 + gamma * b) ** -power`` and
    ``gamma' = gamma / (1 + gamma * b)``, ``lr'(i) = lr(b + i)`` for every ``i``,
    because ``1 + gamma' * i = (1 + gamma * (b + i)) / (1 + gamma * b)``.
    """
    scale = 1.0 + gamma * base_iter
    return base_lr * scale ** -power, gamma / scale


@dataclass(frozen=True)
class RenderedSolver:
    """The written ``solver.prototxt`` and the parsed solver and train/test net."""

    solver_path: Path
    solver: object  # caffe_pb2.SolverParameter
    net: object  # caffe_pb2.NetParameter


def render_solver(
    model: ModelSpec | str,
    out_dir: PathLike,
    settings: SolverSettings,
    *,
    train_lmdb: PathLike,
    test_lmdb: PathLike,
    test_interval: int | None = None,
    test_iter: int | None = None,
    solver_mode: str = "CPU",
    force_backward: bool = False,
) -> RenderedSolver:
    """Write ``out_dir/solver.prototxt`` and ``out_dir/train_test.prototxt`` for a run.

    The model's solver and train/test prototxts are parsed, their placeholders
    ``TRAIN_LMDB``, ``TEST_LMDB``, ``NET_PROTOTXT`` and ``SNAPSHOT_PREFIX``
    (``out_dir/snapshot``) substituted, ``settings`` applied, and both files
    written atomically with absolute paths.

    Parameters
    ----------
    model:
        A :class:`~hotcold.caffe.zoo.ModelSpec` or a model name (``"lenet"``).
    out_dir:
        Directory of the run; created when missing.
    settings:
        The run's seed, iterations, learning rate and snapshot interval.
    train_lmdb, test_lmdb:
        Datum LMDB directories (see :mod:`hotcold.caffe.lmdb_io`).
    test_interval, test_iter:
        Replace the solver's test settings. ``test_interval=0`` removes the
        test net altogether (Caffe then never tests).
    solver_mode:
        ``"CPU"`` or ``"GPU"`` (pycaffe follows the thread's device; the field
        keeps the file usable with the ``caffe`` tool).
    force_backward:
        Set the net's ``force_backward``, so that backward fills the input
        blob's diff (the input gradient an adversarial objective needs).

    Raises
    ------
    ValueError
        Naming the parameter and the fix, for any value Caffe would abort on.
    """
    spec = as_model(model)
    if spec.train_test_prototxt is None or spec.solver_prototxt is None:
        raise ValueError(f"model {spec.name!r} has no train_test_prototxt/solver_prototxt; "
                         f"add them to its model YAML to train it")
    train_lmdb = check_lmdb("train_lmdb", train_lmdb)
    test_lmdb = check_lmdb("test_lmdb", test_lmdb)
    if test_interval is not None:
        check_int("test_interval", test_interval, 0, "or 0 for no testing")
    if test_iter is not None:
        check_int("test_iter", test_iter, 1, "test batches per test, e.g. 100 for 10K images in batches of 100")
        if test_interval == 0:
            raise ValueError("test_iter is meaningless with test_interval=0 (no test net); drop one of them")
    if solver_mode not in _SOLVER_MODES:
        raise ValueError(f"solver_mode must be one of {_SOLVER_MODES}, got {solver_mode!r}")

    pb2 = caffe_pb2()
    net = parse_text(spec.train_test_prototxt, pb2.NetParameter())
    solver = parse_text(spec.solver_prototxt, pb2.SolverParameter())
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

    if force_backward:
        net.force_backward = True
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    net_path, solver_path = out / "train_test.prototxt", out / "solver.prototxt"
    solver.net = str(net_path)
    solver.snapshot_prefix = str(out / SNAPSHOT_NAME)
    solver.snapshot_format = pb2.SolverParameter.BINARYPROTO
    solver.random_seed = int(settings.seed)
    solver.max_iter = int(settings.max_iter)
    solver.solver_mode = getattr(pb2.SolverParameter, solver_mode)
    if settings.base_lr is not None:
        solver.base_lr = float(settings.base_lr)
    if settings.lr_schedule == "continue":
        if solver.lr_policy != "inv":
            raise ValueError(f"lr_schedule='continue' is defined for lr_policy 'inv'; {spec.solver_prototxt} "
                             f"uses {solver.lr_policy!r}. Use lr_schedule='restart'")
        solver.base_lr, solver.gamma = continued_inv_schedule(solver.base_lr, solver.gamma, solver.power,
                                                              int(settings.base_iter))
    solver.snapshot = int(settings.snapshot_every)
    if test_interval == 0:
        solver.ClearField("test_iter")
    if test_interval is not None:
        solver.test_interval = int(test_interval)
    if test_iter is not None:
        solver.ClearField("test_iter")
        solver.test_iter.append(int(test_iter))

    atomic_write(net_path, text_format.MessageToString(net).encode())
    atomic_write(solver_path, text_format.MessageToString(solver).encode())
    return RenderedSolver(solver_path, solver, net)


def as_model(model: ModelSpec | str) -> ModelSpec:
    """A :class:`ModelSpec` as it is, or the model of that name or YAML path."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise TypeError(f"model must be a ModelSpec or a model name such as 'lenet', got {type(model).__name__}")


def check_lmdb(name: str, path: PathLike) -> Path:
    """The absolute path of a non-empty Datum LMDB, else a ValueError naming ``name``."""
    path = Path(path).resolve()
    if not (path / "data.mdb").is_file():
        raise ValueError(f"{name}={str(path)!r} is not an LMDB directory (no data.mdb); write one with "
                         "hotcold.caffe.lmdb_io.write_datum_lmdb or shuffled_copy")
    with open_readonly(path) as env:
        if env.stat()["entries"] == 0:
            raise ValueError(f"{name}={str(path)!r} is an empty LMDB; Caffe's Data layer needs records")
    return path
