"""Experiment configuration: the YAML schema of ``hotcold run`` as dataclasses, checked before any work.

Every key, its default and its meaning is a field below; ``experiments/*.yaml``
are examples. :func:`load_experiment` rejects unknown keys, wrong types and
meaningless values naming the key path (``generate.scales[1]``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from hotcold._guard import check_plain_name
from hotcold.caffe.runtime import check_device
from hotcold.caffe.zoo import load_model
from hotcold.core.methods import parse_methods
from hotcold.data.mnist import MNIST_TEST_IMAGES, MNIST_TRAIN_IMAGES
from hotcold.pipeline.executor import ExecutionSettings


@dataclass(frozen=True)
class DataConfig:
    source: str | None = None
    """Folder with the four MNIST IDX .gz files; None: $HOTCOLD_MNIST_DIR, else download."""


@dataclass(frozen=True)
class TrainConfig:
    nets: int = 3
    """Base nets, each with its own seed (paper: 3)."""
    iterations: int = 10000
    """Solver iterations per base net (paper: 10K)."""
    snapshot_every: int = 1000
    """Snapshot interval; a killed run resumes from the latest snapshot (the newest two are kept)."""


@dataclass(frozen=True)
class GenerateConfig:
    source_images: int = 60000
    """How many of the first MNIST training images to generate from."""
    scales: list[float] = field(default_factory=lambda: [1.0])
    """Scales applied to methods without an explicit ``xS`` suffix."""
    tau: float | None = None
    """PASS threshold of Eq. 5 (None: keep every found image)."""
    max_eps: float = 255.0
    """Line-search cap in pixel levels."""
    chunk_size: int = 500
    """Originals per atomic, resumable chunk."""


@dataclass(frozen=True)
class TrainingSet:
    name: str
    """Row name in Table 1, e.g. HC-D-9-1.05."""
    methods: list[str]
    """Method names whose generated images form the set, e.g. [HC-D-1..9x1.05]."""


@dataclass(frozen=True)
class FinetuneConfig:
    iterations: int = 20000
    """Fine-tuning iterations (paper: 20K)."""
    orderings: int = 3
    """Random orderings of each training set per base net (paper: 3)."""
    mix_originals: bool = True
    """Mix the 60K originals into the fine-tuning set (docs/training.md)."""
    lr_schedule: str = "restart"
    """'restart' the solver's schedule, or 'continue' it from the base net's iteration."""
    training_sets: list[TrainingSet] = field(default_factory=list)
    """The rows of Table 1 beyond the basic LeNet."""


@dataclass(frozen=True)
class EvaluateConfig:
    types: list[str] = field(default_factory=lambda: [
        "FGS", "FGV", "HC-D-1..9", "HC-D-1x1.05", "HC-D-1x1.1", "HC-S-1"])
    """Adversarial test types (paper: these 14)."""
    per_type: int = 5000
    """Held-out images per type, over all base nets (paper: 5K)."""
    source_images: int = 10000
    """How many MNIST test images to generate the adversarial test set from."""
    tau: float | None = None
    """PASS threshold for the adversarial test images."""


@dataclass(frozen=True)
class ReportConfig:
    example_source: int | None = None
    """MNIST test image shown in the Fig. 2 style figure (None: the first with every type)."""


@dataclass(frozen=True)
class ExecutionConfig:
    executor: str = "local"
    """local (in process), processes (a Dask LocalCluster) or dask (an existing scheduler); docs/execution.md."""
    workers: int = 2
    """Worker processes of the processes executor."""
    scheduler: str | None = None
    """Address of the Dask scheduler of the dask executor, e.g. tcp://host:8786."""
    retries: int = 1
    """Extra tries of a unit that raised an error."""
    shard_images: int | None = None
    """Source images per generation unit, a multiple of generate.chunk_size (None: the largest multiple up to
    10,000): the grain of parallel work. Results do not depend on it."""


@dataclass(frozen=True)
class Fig6Config:
    """Fine-tuning on generated images of one PASS range at a time (Sec. 5.2, Fig. 6; docs/fig6.md)."""

    ranges: list[list[float]] = field(default_factory=lambda: [[0.5, 0.6], [0.6, 0.7], [0.7, 0.8], [0.8, 0.9],
                                                               [0.9, 1.0]])
    """PASS ranges [low, high); a range ending at 1.0 includes 1.0. Fig. 6 spans 0.5 (500) to 1.0 (1000)."""
    include_all: bool = True
    """Also fine-tune on images of any PASS ("all"), as many as each range."""
    methods: list[str] = field(default_factory=lambda: [
        "FGS", "FGV", "HC-D-1..9", "HC-D-1x1.05", "HC-D-1x1.1", "HC-S-1"])
    """Generated types the ranges draw from (default: the 14 types of the adversarial test set)."""
    iterations: int | None = None
    """Fine-tuning iterations per run (None: finetune.iterations)."""
    orderings: int | None = None
    """Orderings per range and base net (None: finetune.orderings)."""


@dataclass(frozen=True)
class InfimnistConfig:
    """Table 1's "InfiMNIST (1M)" row and the adversarial share of Sec. 2 (docs/infimnist.md)."""

    samples: int = 1000000
    """InfiMNIST samples trained on and measured (paper: 1M)."""
    first: int = 70000
    """First InfiMNIST index (70000: the first deformed digit)."""
    nets: int = 3
    """LeNets trained from scratch on the samples, net i with seed + i (paper: three)."""
    iterations: int = 30000
    """Training iterations per net (paper: 30K)."""
    data: str | None = None
    """InfiMNIST's data folder with its original fields and tangent vectors (None: hotcold's approximation)."""


@dataclass(frozen=True)
class GoodfellowConfig:
    """Table 1's "Goodfellow*" row: fine-tuning with Goodfellow et al.'s adversarial objective (docs/goodfellow.md)."""

    alpha: float = 0.5
    """Weight of the clean loss (Goodfellow et al.: 0.5)."""
    eps: float = 0.25
    """FGS step as a fraction of the pixel range (Goodfellow et al. on MNIST: 0.25)."""
    iterations: int | None = None
    """Fine-tuning iterations per run (None: finetune.iterations)."""


@dataclass(frozen=True)
class Experiment:
    name: str
    """Run name; the default run directory is runs/<name>."""
    kind: str = "mnist_table1"
    """Which experiment: mnist_table1 (Sec. 5.2, this schema), imagenet_fig3 or imagenet_hp
    (:mod:`hotcold.pipeline.imagenet_config`)."""
    model: str = "lenet"
    """A shipped model name (``lenet``) or the path of a model YAML file."""
    seed: int = 0
    """Base seed: net i uses seed + i; orderings use seed + 1000 * (ordering + 1) + i."""
    device: str = "cpu"
    """cpu, gpu or gpu:N."""
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    fig6: Fig6Config | None = None
    """Fig. 6 (training by PASS range); None: not run."""
    infimnist: InfimnistConfig | None = None
    """Table 1's InfiMNIST row and the InfiMNIST adversarial share; None: not run."""
    goodfellow: GoodfellowConfig | None = None
    """Table 1's Goodfellow row; None: not run."""


def _build(cls, raw, where: str):
    """Build dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types by key path."""
    if not isinstance(raw, dict):
        raise ValueError(f"{where or 'experiment'}: expected a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{where + '.' if where else ''}{unknown[0]}: unknown key; "
                         f"valid keys here: {', '.join(sorted(names))}")
    values = {}
    for f in dataclasses.fields(cls):
        key = f"{where}.{f.name}" if where else f.name
        if f.name not in raw:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ValueError(f"{key}: missing required key")
            continue
        values[f.name] = _convert(hints[f.name], raw[f.name], key)
    return cls(**values)


def _convert(tp, value, key: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, key)
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported config type {tp}")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error, not the last one winning."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {seen[key] + 1} and "
                    f"{key_node.start_mark.line + 1}); keep one", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def execution_settings(exp: Experiment, **override) -> ExecutionSettings:
    """The experiment's ``execution:`` as executor settings, with command-line values (not None) on top."""
    e = exp.execution
    values = {"executor": e.executor, "workers": e.workers, "scheduler": e.scheduler, "retries": e.retries}
    values.update({k: v for k, v in override.items() if v is not None})
    if override.get("executor") in ("local", "processes") and override.get("scheduler") is None:
        values["scheduler"] = None  # the YAML's scheduler belongs to its own executor
    return ExecutionSettings(**values)


def builtin_experiments() -> list[str]:
    """Names of the experiment configs shipped with hotcold (``mnist_quick``, ...)."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def _builtin_dir() -> Path:
    return Path(str(resources.files("hotcold.pipeline.experiments")))


def find_experiment(name_or_path: str | os.PathLike) -> Path:
    """The YAML file of a built-in experiment name (``mnist_quick``) or of a path.

    Raises
    ------
    ValueError
        When it is neither, listing the built-in names.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    if not path.suffix and path.name == str(name_or_path):
        builtin = _builtin_dir() / f"{path.name}.yaml"
        if builtin.is_file():
            return builtin
    raise ValueError(f"experiment {str(name_or_path)!r} is neither a YAML file nor a built-in experiment; "
                     f"built-in: {', '.join(builtin_experiments())}")


EXPERIMENT_KINDS = ("mnist_table1", "imagenet_fig3", "imagenet_hp")
"""The values of an experiment YAML's ``kind``."""


def load_experiment(name_or_path: str | os.PathLike, *, device: str | None = None):
    """Load and validate an experiment (a built-in name or a YAML path) before any work starts.

    Returns an :class:`Experiment` (``kind: mnist_table1``, the default), or for
    the ImageNet kinds a :class:`~hotcold.pipeline.imagenet_config.Fig3Experiment` /
    :class:`~hotcold.pipeline.imagenet_config.HardPositiveExperiment`.
    ``device`` replaces the YAML's ``device:`` before validation (``hotcold run --gpu N`` / ``--device``), so a
    GPU experiment can run with ``device="cpu"`` on a CPU-only build.

    Raises
    ------
    ValueError
        Naming the key path (e.g. ``generate.scales[1]``) and the problem.
    """
    path = find_experiment(name_or_path)
    try:
        raw = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    kind = raw.get("kind", "mnist_table1") if isinstance(raw, dict) else "mnist_table1"
    if kind not in EXPERIMENT_KINDS:
        raise ValueError(f"kind: must be one of {', '.join(EXPERIMENT_KINDS)}, got {kind!r}")
    if kind == "mnist_table1":
        exp = _build(Experiment, raw, "")
        if device is not None:
            exp = dataclasses.replace(exp, device=device)
        _validate(exp)
        return exp
    from hotcold.pipeline import imagenet_config

    cls, check = {"imagenet_fig3": (imagenet_config.Fig3Experiment, imagenet_config.validate_fig3),
                  "imagenet_hp": (imagenet_config.HardPositiveExperiment, imagenet_config.validate_hp)}[kind]
    exp = _build(cls, raw, "")
    if device is not None:
        exp = dataclasses.replace(exp, device=device)
    check(exp)
    try:
        execution_settings(exp)
    except ValueError as exc:
        raise ValueError(f"execution: {exc}") from None
    return exp


def _validate(exp: Experiment) -> None:
    try:
        check_plain_name(exp.name, "name")
    except ValueError as exc:
        raise ValueError(f"{exc}; it names the run directory runs/<name>") from None
    try:
        model = load_model(exp.model)
    except ValueError as exc:
        raise ValueError(f"model: {exc}") from None
    k = model.num_classes
    if exp.seed < 0:
        raise ValueError(f"seed: must be >= 0 (Caffe's random_seed), got {exp.seed}")
    try:
        check_device(exp.device, build=False)
    except ValueError as exc:
        raise ValueError(f"device: {exc}") from None

    def positive(key, value):
        if value < 1:
            raise ValueError(f"{key}: must be >= 1, got {value}")

    for key, value in [("train.nets", exp.train.nets), ("train.iterations", exp.train.iterations),
                       ("train.snapshot_every", exp.train.snapshot_every),
                       ("generate.source_images", exp.generate.source_images),
                       ("generate.chunk_size", exp.generate.chunk_size),
                       ("finetune.iterations", exp.finetune.iterations),
                       ("finetune.orderings", exp.finetune.orderings),
                       ("evaluate.per_type", exp.evaluate.per_type),
                       ("evaluate.source_images", exp.evaluate.source_images)]:
        positive(key, value)
    for key, value, most in [("generate.source_images", exp.generate.source_images, MNIST_TRAIN_IMAGES),
                             ("evaluate.source_images", exp.evaluate.source_images, MNIST_TEST_IMAGES)]:
        if value > most:
            raise ValueError(f"{key}: MNIST has {most:,} images there, got {value:,}; use at most {most}")
    if exp.train.snapshot_every > exp.train.iterations:
        raise ValueError(f"train.snapshot_every: {exp.train.snapshot_every} is more than train.iterations "
                         f"({exp.train.iterations}); a snapshot is always written at the end, so use at most that")
    if exp.generate.max_eps <= 0:
        raise ValueError(f"generate.max_eps: must be > 0 pixel levels (255 is the whole range), got "
                         f"{exp.generate.max_eps}")
    shard = exp.execution.shard_images
    if shard is not None and (shard < 1 or shard % exp.generate.chunk_size):
        raise ValueError(f"execution.shard_images: must be a positive multiple of generate.chunk_size "
                         f"({exp.generate.chunk_size}), got {exp.execution.shard_images}")
    try:
        execution_settings(exp)
    except ValueError as exc:
        raise ValueError(f"execution: {exc}") from None
    if not exp.generate.scales:
        raise ValueError("generate.scales: give at least one scale, e.g. [1.0] for minimal adversarials")
    for i, s in enumerate(exp.generate.scales):
        if s < 1:
            raise ValueError(f"generate.scales[{i}]: hard-positive scales must be >= 1, got {s}")
    for key, tau in [("generate.tau", exp.generate.tau), ("evaluate.tau", exp.evaluate.tau)]:
        if tau is not None and not 0 <= tau <= 1:
            raise ValueError(f"{key}: PASS threshold must be in [0, 1], got {tau}")
    if exp.finetune.lr_schedule not in ("restart", "continue"):
        raise ValueError(f"finetune.lr_schedule: must be 'restart' or 'continue', got {exp.finetune.lr_schedule!r}")
    for i, ts in enumerate(exp.finetune.training_sets):
        for j, name in enumerate(ts.methods):
            try:
                parse_methods(name, num_classes=k)
            except ValueError as exc:
                raise ValueError(f"finetune.training_sets[{i}].methods[{j}]: {exc}") from None
    for j, name in enumerate(exp.evaluate.types):
        try:
            parse_methods(name, num_classes=k)
        except ValueError as exc:
            raise ValueError(f"evaluate.types[{j}]: {exc}") from None
    if exp.data.source is not None and not Path(exp.data.source).is_dir():
        raise ValueError(f"data.source: folder {exp.data.source!r} does not exist")
    names = [ts.name for ts in exp.finetune.training_sets]
    if len(set(names)) != len(names):
        raise ValueError("finetune.training_sets: names must be unique")
    _validate_paper_rows(exp, k)


def _validate_paper_rows(exp: Experiment, num_classes: int) -> None:
    """The sections of Fig. 6, the InfiMNIST row and the Goodfellow row."""
    if exp.fig6 is not None:
        f = exp.fig6
        if not f.ranges:
            raise ValueError("fig6.ranges: give at least one PASS range, e.g. [[0.8, 0.9]]")
        for i, r in enumerate(f.ranges):
            if len(r) != 2 or not 0 <= r[0] < r[1] <= 1:
                raise ValueError(f"fig6.ranges[{i}]: a range is [low, high] with 0 <= low < high <= 1, got {r}")
            if list(r) in [list(q) for q in f.ranges[:i]]:
                raise ValueError(f"fig6.ranges[{i}]: {list(r)} is given twice")
        if not f.methods:
            raise ValueError("fig6.methods: name at least one method, e.g. [FGS, HC-D-1..9]")
        for j, name in enumerate(f.methods):
            try:
                parse_methods(name, num_classes=num_classes)
            except ValueError as exc:
                raise ValueError(f"fig6.methods[{j}]: {exc}") from None
        for key, value in (("fig6.iterations", f.iterations), ("fig6.orderings", f.orderings)):
            if value is not None and value < 1:
                raise ValueError(f"{key}: must be >= 1 (or null for the finetune value), got {value}")
    if exp.infimnist is not None:
        m = exp.infimnist
        for key, value in (("infimnist.samples", m.samples), ("infimnist.nets", m.nets),
                           ("infimnist.iterations", m.iterations)):
            if value < 1:
                raise ValueError(f"{key}: must be >= 1, got {value}")
        if m.first < 70000:
            raise ValueError(f"infimnist.first: InfiMNIST indices below 70000 are the MNIST images themselves, "
                             f"got {m.first}; use 70000 for the first deformed digit")
        if m.data is not None and not Path(m.data).is_dir():
            raise ValueError(f"infimnist.data: folder {m.data!r} does not exist; give InfiMNIST's data folder, "
                             "or null for hotcold's fields and tangent vectors")
    if exp.goodfellow is not None:
        g = exp.goodfellow
        if not 0 <= g.alpha <= 1:
            raise ValueError(f"goodfellow.alpha: must be in [0, 1] (Goodfellow et al. use 0.5), got {g.alpha}")
        if not 0 < g.eps <= 1:
            raise ValueError(f"goodfellow.eps: a fraction of the pixel range in (0, 1] (Goodfellow et al.: 0.25), "
                             f"got {g.eps}")
        if g.iterations is not None and g.iterations < 1:
            raise ValueError(f"goodfellow.iterations: must be >= 1 (or null for finetune.iterations), "
                             f"got {g.iterations}")
        if load_model(exp.model).mean is not None:
            raise ValueError(f"goodfellow: model {exp.model!r} subtracts a mean, and the adversarial objective clips "
                             "x + eps sign(grad) to the raw pixel range [0, 255 x scale]; use a model without a mean "
                             "(as LeNet) or remove the goodfellow section")
