"""``hotcold run EXPERIMENT.yaml``: the MNIST pipeline of Sec. 5 in stages.

Stages, each writing its outputs and a ``manifest.json`` (resolved config,
inputs, code version, timings) under the run directory:

1. ``data``: the MNIST IDX files, MD5-verified, as Caffe LMDBs.
2. ``train``: N base LeNets, different seeds (random init and data order).
3. ``generate``: adversarials / hard positives of the training images each base
   net classifies correctly, for the methods the training sets need.
4. ``finetune``: each base net fine-tuned on each training set, per ordering.
5. ``evaluate``: MNIST test error of every net; error on a held-out adversarial
   test set made from the MNIST *test* images on all base nets, with an equal
   number of images per type (the paper: 14 types x 5K).
6. ``report``: Table 1 (Markdown + CSV) and Fig. 2 / 4 / 5 style figures.

Re-running skips stages whose manifest matches the config and resumes the
others (training from snapshots, generation from completed chunks).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from hotcold._io import atomic_write
from hotcold.methods import parse_methods

REPO = Path(__file__).resolve().parent.parent


# -- configuration -----------------------------------------------------------------
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
class Experiment:
    name: str
    """Run name; the default run directory is runs/<name>."""
    model: str = "lenet"
    """models/<model>.yaml."""
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
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
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


def load_experiment(path: str | os.PathLike) -> Experiment:
    """Load and validate an experiment YAML before any work starts.

    Raises
    ------
    ValueError
        Naming the key path (e.g. ``generate.scales[1]``) and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"experiment file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from exc
    exp = _build(Experiment, raw, "")
    _validate(exp)
    return exp


def _validate(exp: Experiment) -> None:
    from hotcold.models import load_model

    model = load_model(exp.model)
    k = model.num_classes

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


# -- stage bookkeeping --------------------------------------------------------------
def code_version() -> str:
    """hotcold's version plus the git commit of the working tree (``-dirty`` with uncommitted changes)."""
    from hotcold import __version__

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return __version__
    dirty = "-dirty" if git("status", "--porcelain", "--untracked-files=no") else ""
    return f"{__version__}+{commit}{dirty}"


def _config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Stage:
    """A stage directory with a manifest.

    ``done`` when it completed with this config. A stage started with another
    config (``started.json`` differs) is cleared first: its partial outputs
    belong to that other config and must not be resumed.
    """

    def __init__(self, run_dir: Path, name: str, config, version: str) -> None:
        self.dir = run_dir / name
        self.version = version
        self.name = name
        self.config = config
        self.hash = _config_hash(config)
        self.manifest = self.dir / "manifest.json"
        started = self.dir / "started.json"
        if started.exists() and json.loads(started.read_text()).get("config_hash") != self.hash:
            _log(f"{name}: configuration changed since this stage started; clearing {self.dir}")
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


def _log(message: str) -> None:
    print(f"[hotcold run] {message}", flush=True)


# -- stages -------------------------------------------------------------------------
def run_experiment(path: str | os.PathLike, *, out: str | os.PathLike | None = None,
                   progress: bool = True) -> Path:
    """Run (or resume) every stage of an experiment; returns the run directory."""
    from hotcold.data.mnist import find_mnist_source, load_mnist, prepare_mnist
    from hotcold.generation_run import generate_to_lmdb
    from hotcold.lmdb_io import write_shuffled_mix
    from hotcold.methods import with_scales
    from hotcold.models import load_model
    from hotcold.report import read_metadata, write_report
    from hotcold.search import SearchSettings
    from hotcold.train import error_rate, shuffled_copy, train

    exp = load_experiment(path)
    version = code_version()  # the code that runs now, whatever is committed meanwhile
    run_dir = Path(out) if out else REPO / "runs" / exp.name
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "experiment.resolved.json", json.dumps(dataclasses.asdict(exp), indent=2))
    model = load_model(exp.model)
    cfg = dataclasses.asdict(exp)
    settings = SearchSettings(max_eps=exp.generate.max_eps)
    t0 = time.time()

    # 1. data
    source = str(find_mnist_source(exp.data.source))
    stage = _Stage(run_dir, "data", {"data": cfg["data"], "source": source}, version)
    if not stage.done:
        _log("data: verifying MNIST and writing LMDBs")
        stage.finish({"source": source}, prepare_mnist(stage.dir, source=source))
    data = stage.outputs()
    mnist = load_mnist(source)

    # 2. base nets
    stage = _Stage(run_dir, "train", {"train": cfg["train"], "seed": exp.seed, "model": exp.model, "data": data},
                   version)
    if not stage.done:
        nets = {}
        for i in range(exp.train.nets):
            _log(f"train: base{i} ({exp.train.iterations} iterations, seed {exp.seed + i})")
            order = shuffled_copy(data["train_lmdb"], stage.dir / f"order_base{i}.lmdb", seed=exp.seed + i)
            result = train(model, stage.dir / f"base{i}", train_lmdb=order, test_lmdb=data["test_lmdb"],
                           seed=exp.seed + i, max_iter=exp.train.iterations,
                           snapshot_every=exp.train.snapshot_every, keep_snapshots=2, progress=progress,
                           device=exp.device)
            nets[f"base{i}"] = str(result.weights)
        stage.finish(data, {"nets": nets})
    base_nets: dict[str, str] = stage.outputs()["nets"]

    # 3. training images on each base net
    train_methods = sorted({m.name for ts in exp.finetune.training_sets for m in
                            with_scales(parse_methods(ts.methods, num_classes=model.num_classes),
                                        exp.generate.scales)})
    stage = _Stage(run_dir, "generate", {"generate": cfg["generate"], "methods": train_methods,
                                         "nets": base_nets}, version)
    if not stage.done:
        generated = {}
        n = exp.generate.source_images
        for net, weights in base_nets.items():
            if not train_methods:
                break
            _log(f"generate: {len(train_methods)} methods on {n} training images, {net}")
            summary = generate_to_lmdb(model.classifier(weights, device=exp.device), mnist.train_images[:n],
                                       mnist.train_labels[:n], train_methods, stage.dir / net, net_name=net,
                                       tau=exp.generate.tau, settings=settings,
                                       chunk_size=exp.generate.chunk_size, progress=progress)
            generated[net] = {"lmdb": str(summary.lmdb), "metadata": str(summary.metadata),
                              "images": summary.images, "forward_calls": summary.forward_passes}
        stage.finish({"nets": base_nets}, {"generated": generated})
    generated = stage.outputs()["generated"]

    # 4. fine-tuning: every training set x base net x ordering
    stage = _Stage(run_dir, "finetune", {"finetune": cfg["finetune"], "generate": cfg["generate"],
                                         "generated": generated, "data": data}, version)
    if not stage.done:
        tuned = {}
        for ts in exp.finetune.training_sets:
            wanted = [m.name for m in with_scales(parse_methods(ts.methods), exp.generate.scales)]
            for i, (net, weights) in enumerate(base_nets.items()):
                meta = read_metadata(generated[net]["metadata"])
                keys = sorted(meta["key"][np.isin(meta["method"], wanted)].tolist())
                if not keys:
                    _log(f"finetune: no generated images of {ts.name} on {net}; row skipped for this net")
                    continue
                for o in range(exp.finetune.orderings):
                    tag = f"{ts.name}/{net}_order{o}"
                    seed = exp.seed + 1000 * (o + 1) + i
                    mix = stage.dir / ts.name / f"{net}_order{o}.lmdb"
                    if not (mix / "data.mdb").is_file():
                        sources = [generated[net]["lmdb"]] + ([data["train_lmdb"]] if exp.finetune.mix_originals
                                                              else [])
                        write_shuffled_mix(mix, sources, seed=seed, select=[keys] + [None] * (len(sources) - 1))
                    _log(f"finetune: {tag} ({len(keys)} generated images, {exp.finetune.iterations} iterations)")
                    continued = exp.finetune.lr_schedule == "continue"
                    result = train(model, stage.dir / ts.name / f"{net}_order{o}", train_lmdb=mix,
                                   test_lmdb=data["test_lmdb"], seed=seed, max_iter=exp.finetune.iterations,
                                   init_weights=weights, lr_schedule=exp.finetune.lr_schedule,
                                   base_iter=exp.train.iterations if continued else None,
                                   snapshot_every=exp.train.snapshot_every, keep_snapshots=2, progress=progress,
                                   device=exp.device)
                    tuned[tag] = {"weights": str(result.weights), "set": ts.name, "base": net,
                                  "train_images": len(keys)}
        stage.finish({"nets": base_nets, "generated": generated}, {"nets": tuned})
    tuned = stage.outputs()["nets"]

    # 5. evaluation: MNIST test error and the held-out adversarial test set
    eval_types = [m.name for m in parse_methods(exp.evaluate.types, num_classes=model.num_classes)]
    stage = _Stage(run_dir, "evaluate", {"evaluate": cfg["evaluate"], "max_eps": exp.generate.max_eps,
                                         "nets": base_nets, "tuned": tuned}, version)
    if not stage.done:
        n = exp.evaluate.source_images
        summaries = []
        for net, weights in base_nets.items():
            _log(f"evaluate: adversarial test images ({len(eval_types)} types, {n} MNIST test images) on {net}")
            summaries.append(generate_to_lmdb(model.classifier(weights, device=exp.device), mnist.test_images[:n],
                                              mnist.test_labels[:n], eval_types, stage.dir / f"advtest_{net}",
                                              net_name=net, tau=exp.evaluate.tau, settings=settings,
                                              chunk_size=exp.generate.chunk_size, progress=progress))
        test_set = _adversarial_test_set(summaries, eval_types, exp.evaluate.per_type, exp.seed)
        counts = {t: int((test_set["method"] == t).sum()) for t in eval_types}
        _log(f"evaluate: adversarial test set of {len(test_set['labels'])} images, per type {counts}")
        results = {}
        everything = {net: {"weights": w, "set": "basic LeNet", "base": net, "train_images": 0}
                      for net, w in base_nets.items()}
        everything.update(tuned)
        for tag, info in everything.items():
            clf = model.classifier(info["weights"], device=exp.device)
            results[tag] = {**info, "mnist_error": error_rate(clf, mnist.test_images, mnist.test_labels),
                            "adv_error": (error_rate(clf, test_set["images"], test_set["labels"])
                                          if len(test_set["labels"]) else float("nan"))}
        stage.finish({"nets": base_nets, "tuned": tuned},
                     {"results": results, "adversarial_test_counts": counts,
                      "metadata": [str(s.metadata) for s in summaries]})
    evaluation = stage.outputs()

    # 6. report
    stage = _Stage(run_dir, "report", {"report": cfg["report"], "evaluation": evaluation}, version)
    rows = _table_rows(evaluation["results"])
    examples = _examples(evaluation["metadata"][0], mnist.test_images, exp.report.example_source, eval_types)
    paths = write_report(stage.dir, rows, evaluation["metadata"], examples=examples)
    stage.finish({"evaluation": str(run_dir / "evaluate" / "manifest.json")}, {"files": [str(p) for p in paths]})
    _log(f"done in {time.time() - t0:.0f} s; report: {stage.dir / 'report.md'}")
    print((stage.dir / "table1.md").read_text())
    return run_dir


def _adversarial_test_set(summaries, types: list[str], per_type: int, seed: int) -> dict:
    """Equal numbers of images per type, drawn at random and evenly over the base nets.

    Each type gets min(per_type, what the scarcest type offers) images; a type
    with no image at all is left out (and logged) rather than emptying the set.
    """
    from hotcold.lmdb_io import read_datum_lmdb
    from hotcold.report import read_metadata

    rng = np.random.default_rng(seed)
    pools: dict[str, list[list[tuple[int, str]]]] = {t: [] for t in types}
    arrays = []
    for s_index, summary in enumerate(summaries):
        meta = read_metadata(summary.metadata)
        arrays.append(read_datum_lmdb(summary.lmdb))
        for t in types:
            keys = meta["key"][meta["method"] == t].tolist()
            pools[t].append([(s_index, k) for k in rng.permutation(np.array(keys, dtype=object)).tolist()])
    empty = [t for t in types if not any(pools[t])]
    if empty:
        _log(f"evaluate: no adversarial test image of type(s) {empty}; left out of the test set")
    present = [t for t in types if t not in empty]
    take = min([per_type] + [sum(len(p) for p in pools[t]) for t in present]) if present else 0
    index = [{k: i for i, k in enumerate(a.keys)} for a in arrays]
    images, labels, methods = [], [], []
    for t in present:
        # Round-robin over the nets keeps the draw even across them.
        chosen = [pair for group in _round_robin(pools[t]) for pair in group][:take]
        for s_index, key in chosen:
            images.append(arrays[s_index].images[index[s_index][key]])
            labels.append(arrays[s_index].labels[index[s_index][key]])
        methods += [t] * len(chosen)
    shape = arrays[0].images.shape[1:] if arrays else (0,)
    return {"images": np.array(images, np.uint8).reshape((-1,) + shape),
            "labels": np.array(labels, np.int64), "method": np.array(methods)}


def _round_robin(lists: list[list]) -> list[list]:
    """[[a0, b0, c0], [a1, b1, c1], ...] from [[a0, a1, ...], [b0, b1, ...], ...]."""
    longest = max((len(x) for x in lists), default=0)
    return [[x[i] for x in lists if i < len(x)] for i in range(longest)]


def _table_rows(results: dict) -> list[dict]:
    groups: dict[str, list[dict]] = {}
    for info in results.values():
        groups.setdefault(info["set"], []).append(info)
    rows = []
    for name, infos in groups.items():
        mnist_err = np.array([i["mnist_error"] for i in infos])
        adv_err = np.array([i["adv_error"] for i in infos])
        rows.append({"training_data": name, "nets": len(infos),
                     "mnist_error_mean": float(mnist_err.mean()), "mnist_error_std": float(mnist_err.std()),
                     "adv_error_mean": float(adv_err.mean()), "adv_error_std": float(adv_err.std()),
                     "train_images": int(np.mean([i["train_images"] for i in infos]))})
    return rows


def _examples(metadata: str, test_images: np.ndarray, source: int | None, types: list[str]):
    """Fig. 2 inputs: one original and its adversarial of every type found for it."""
    from hotcold.lmdb_io import read_datum_lmdb
    from hotcold.report import Example, ExampleGrid, read_metadata

    meta = read_metadata(metadata)
    if not len(meta["key"]):
        return None
    by_source: dict[int, dict[str, int]] = {}
    for row, (s, method) in enumerate(zip(meta["source_index"].tolist(), meta["method"].tolist())):
        by_source.setdefault(s, {})[method] = row
    if source is None:
        source = max(by_source, key=lambda s: (len(by_source[s]), -s))
    rows = by_source.get(source, {})
    arrays = read_datum_lmdb(Path(metadata).parent / "images.lmdb")
    index = {k: i for i, k in enumerate(arrays.keys)}
    examples = [Example(t, arrays.images[index[meta["key"][rows[t]]]], float(meta["pass_score"][rows[t]]),
                        float(meta["l2_input"][rows[t]]), float(meta["linf"][rows[t]]),
                        int(meta["predicted"][rows[t]]))
                for t in types if t in rows]
    label = int(meta["label"][next(iter(rows.values()))]) if rows else None
    return ExampleGrid(test_images[source], examples, label) if examples else None
