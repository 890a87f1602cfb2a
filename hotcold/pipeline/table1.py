"""The MNIST experiment of Sec. 5.2 (Table 1, Figs. 2, 4, 5) as a graph of work units.

| unit | does | writes (under the run directory) |
|---|---|---|
| ``data`` | the MNIST IDX files, MD5-verified, as Caffe LMDBs | ``data/`` |
| ``train/base<i>`` | base net i, seed + i, its own data order (Sec. 5.2) | ``train/base<i>/`` |
| ``generate/base<i>/shard<k>`` | adversarials / hard positives of a range of training images | ``generate/base<i>/shards/`` |
| ``generate/base<i>`` | the shards merged into the LMDB Caffe reads (one writer) | ``generate/base<i>/`` |
| ``finetune/<set>/base<i>_order<o>`` | base net i fine-tuned on one ordering of a training set | ``finetune/<set>/`` |
| ``advtest/base<i>/shard<k>``, ``advtest/base<i>`` | adversarial images of the MNIST *test* images on net i | ``evaluate/advtest_base<i>/`` |
| ``evaluate/testset`` | the held-out adversarial test set: equal numbers per type, even over the nets | ``evaluate/`` |
| ``evaluate/<net>`` | MNIST and adversarial test error of one net | (its manifest) |
| ``report`` | Table 1 (Markdown + CSV) and Fig. 2 / 4 / 5 style figures | ``report/`` |

Each unit's seed derives from the experiment seed and its key: base net i uses
seed + i, ordering o of base net i uses seed + 1000 (o + 1) + i (hotcold 0.1's
seeds, so results carry over). Units are module-level functions of
``(run_dir, inputs, **config)`` returning paths relative to the run directory;
:mod:`hotcold.pipeline.units` records and resumes them, and
:mod:`hotcold.pipeline.executor` runs the graph in process or on Dask.
"""
from __future__ import annotations

import functools
import threading
from pathlib import Path

import numpy as np

from hotcold.caffe.lmdb_io import read_datum_lmdb, shuffled_copy, write_datum_lmdb, write_shuffled_mix
from hotcold.caffe.solver import SolverSettings
from hotcold.caffe.train import train
from hotcold.caffe.zoo import load_model
from hotcold.core.methods import parse_methods, with_scales
from hotcold.core.search import SearchSettings
from hotcold.data.mnist import MnistData, load_mnist, prepare_mnist
from hotcold.data.records import read_records
from hotcold.pipeline.config import Experiment
from hotcold.pipeline.evaluation import adversarial_test_set, error_rate, examples, fig6_rows, table_rows
from hotcold.pipeline.generation import generate_to_lmdb, merge_unit
from hotcold.pipeline.units import Unit
from hotcold.report import write_report
from hotcold.report.infimnist import SHARE_KEYS

BASE_ROW = "basic LeNet"
"""Table 1's row of the base nets, before any fine-tuning."""
DEFAULT_SHARD_IMAGES = 10000
"""Source images per generation unit when ``execution.shard_images`` is not given (rounded to chunks)."""
KEEP_SNAPSHOTS = 2
"""Snapshots kept per training run: enough to resume, few enough for disk."""


def build_units(exp: Experiment, *, source: str, progress: bool) -> list[Unit]:
    """The experiment's graph. ``source`` (the MNIST folder) and ``progress`` are local to this machine
    and not part of any unit's config (MNIST is MD5-verified wherever it comes from)."""
    model = load_model(exp.model)
    local = {"source": source, "device": exp.device, "progress": progress}
    base = [f"base{i}" for i in range(exp.train.nets)]
    units = [Unit("data", data_unit, {}, local={"source": source})]
    for i, net in enumerate(base):
        units.append(Unit(f"train/{net}", train_unit, {
            "model": exp.model, "index": i, "seed": exp.seed + i, "iterations": exp.train.iterations,
            "snapshot_every": exp.train.snapshot_every}, needs=("data",),
            owns=(f"train/{net}", f"train/order_{net}.lmdb"), local=local))

    def generation(stage: str, folder: str, net: str, split: str, count: int, methods: list[str],
                   tau: float | None) -> list[Unit]:
        chunk = exp.generate.chunk_size
        step = exp.execution.shard_images or max(chunk, DEFAULT_SHARD_IMAGES // chunk * chunk)
        shards = []
        for k, start in enumerate(range(0, count, step)):
            shards.append(Unit(f"{stage}/{net}/shard{k:03d}", generation_unit, {
                "model": exp.model, "net": net, "split": split, "start": start, "stop": min(start + step, count),
                "methods": methods, "tau": tau, "max_eps": exp.generate.max_eps,
                "chunk_size": exp.generate.chunk_size, "out": f"{folder}/shards/shard{k:03d}"},
                needs=(f"train/{net}",), owns=(f"{folder}/shards/shard{k:03d}",), local=local))
        merge = Unit(f"{stage}/{net}", merge_unit, {"out": folder}, needs=tuple(u.key for u in shards))
        return shards + [merge]

    wanted = [ts.methods for ts in exp.finetune.training_sets] + ([exp.fig6.methods] if exp.fig6 else [])
    methods = sorted({m.name for names in wanted for m in
                      with_scales(parse_methods(names, num_classes=model.num_classes), exp.generate.scales)})
    if methods:
        for net in base:
            units += generation("generate", f"generate/{net}", net, "train", exp.generate.source_images, methods,
                                exp.generate.tau)
    tuned = []
    for ts in exp.finetune.training_sets:
        wanted = [m.name for m in with_scales(parse_methods(ts.methods), exp.generate.scales)]
        for i, net in enumerate(base):
            for o in range(exp.finetune.orderings):
                key = f"finetune/{ts.name}/{net}_order{o}"
                tuned.append(key)
                units.append(Unit(key, finetune_unit, {
                    "model": exp.model, "set": ts.name, "methods": wanted, "net": net, "ordering": o,
                    "seed": exp.seed + 1000 * (o + 1) + i, "iterations": exp.finetune.iterations,
                    "mix_originals": exp.finetune.mix_originals, "lr_schedule": exp.finetune.lr_schedule,
                    "base_iter": exp.train.iterations if exp.finetune.lr_schedule == "continue" else None,
                    "snapshot_every": exp.train.snapshot_every},
                    needs=("data", f"train/{net}", f"generate/{net}"),
                    owns=(f"finetune/{ts.name}/{net}_order{o}", f"finetune/{ts.name}/{net}_order{o}.lmdb"),
                    local=local))
    types = eval_types(exp)
    for net in base:
        units += generation("advtest", f"evaluate/advtest_{net}", net, "test", exp.evaluate.source_images, types,
                            exp.evaluate.tau)
    units.append(Unit("evaluate/testset", testset_unit, {"types": types, "per_type": exp.evaluate.per_type,
                                                         "seed": exp.seed},
                      needs=tuple(f"advtest/{net}" for net in base)))
    evaluated = []
    for key in [f"train/{net}" for net in base] + tuned:
        name = f"evaluate/{key.split('/', 1)[1]}"
        evaluated.append(name)
        units.append(Unit(name, evaluate_unit, {"model": exp.model}, needs=("evaluate/testset", key),
                          local=local))
    units.append(Unit("report", report_unit, {"example_source": exp.report.example_source, "types": types},
                      needs=("evaluate/testset", *evaluated), local={"source": source}))
    return units


def eval_types(exp: Experiment) -> list[str]:
    """The adversarial test set's types, one name each (sets expanded)."""
    model = load_model(exp.model)
    return [m.name for m in parse_methods(exp.evaluate.types, num_classes=model.num_classes)]


# ---------------------------------------------------------------- the units (run on any worker)

@functools.lru_cache(maxsize=2)
def _mnist(source: str) -> MnistData:
    return load_mnist(source)


_classifiers = threading.local()


def classifier_for(model: str, weights: Path, device: str):
    """The worker thread's classifier of (model, weights, device), built on first use in this thread.

    Caffe's mode and device are per thread, so each worker thread builds its own.
    """
    cache = _classifiers.__dict__.setdefault("cache", {})
    stat = Path(weights).stat()
    key = (model, str(weights), stat.st_size, stat.st_mtime_ns, device)  # retrained weights are new weights
    if key not in cache:
        cache.clear()  # one net at a time per thread: a unit works on one
        cache[key] = load_model(model).classifier(weights, device=device)
    return cache[key]


def data_unit(run: Path, inputs: dict, *, source: str) -> dict:
    """MNIST, verified, as ``data/train.lmdb`` and ``data/test.lmdb``."""
    prepare_mnist(run / "data", source=source)
    return {"train_lmdb": "data/train.lmdb", "test_lmdb": "data/test.lmdb"}


def _solver(seed: int, iterations: int, snapshot_every: int, **schedule) -> SolverSettings:
    return SolverSettings(seed=seed, max_iter=iterations, snapshot_every=snapshot_every,
                          keep_snapshots=KEEP_SNAPSHOTS, **schedule)


def train_unit(run: Path, inputs: dict, *, model: str, index: int, seed: int, iterations: int,
               snapshot_every: int, device: str = "cpu", progress: bool = False, source: str = "") -> dict:
    """Base net ``index``: seed + i and a shuffled copy of the training set as its data order (Sec. 5.2)."""
    data = inputs["data"]
    folder = run / "train"
    order = shuffled_copy(run / data["train_lmdb"], folder / f"order_base{index}.lmdb", seed=seed)
    result = train(model, folder / f"base{index}", _solver(seed, iterations, snapshot_every), train_lmdb=order,
                   test_lmdb=run / data["test_lmdb"], progress=progress, device=device)
    return {"weights": str(result.weights.relative_to(run.resolve()))}


def generation_unit(run: Path, inputs: dict, *, model: str, net: str, split: str, start: int, stop: int,
                    methods: list[str], tau: float | None, max_eps: float, chunk_size: int, out: str,
                    device: str = "cpu", progress: bool = False, source: str = "") -> dict:
    """Adversarials / hard positives of MNIST images ``start:stop`` of ``split`` on ``net``."""
    mnist = _mnist(source)
    images = mnist.train_images if split == "train" else mnist.test_images
    labels = mnist.train_labels if split == "train" else mnist.test_labels
    weights = run / inputs[f"train/{net}"]["weights"]
    summary = generate_to_lmdb(classifier_for(model, weights, device), images[start:stop], labels[start:stop],
                               methods, run / out, net_name=net, tau=tau, settings=SearchSettings.capped(max_eps),
                               chunk_size=chunk_size, source_indices=np.arange(start, stop), progress=progress,
                               overwrite=True)  # the unit owns the shard: its manifest decides
    return {"lmdb": f"{out}/images.lmdb", "metadata": f"{out}/metadata.csv", "images": summary.images,
            "forward_calls": summary.forward_passes}


def finetune_unit(run: Path, inputs: dict, *, model: str, set: str, methods: list[str], net: str, ordering: int,
                  seed: int, iterations: int, mix_originals: bool, lr_schedule: str, base_iter: int | None,
                  snapshot_every: int, device: str = "cpu", progress: bool = False, source: str = "") -> dict:
    """Base net ``net`` fine-tuned on one random ordering of a training set (Sec. 5.2)."""
    records = read_records(run / inputs[f"generate/{net}"]["metadata"])
    keys = sorted(records.key[np.isin(records.method, methods)].tolist())
    return finetune_on_keys(run, inputs, keys, model=model, set=set, folder=f"finetune/{set}", net=net,
                            ordering=ordering, seed=seed, iterations=iterations, mix_originals=mix_originals,
                            lr_schedule=lr_schedule, base_iter=base_iter, snapshot_every=snapshot_every,
                            device=device, progress=progress)


def finetune_on_keys(run: Path, inputs: dict, keys: list[str], *, model: str, set: str, folder: str, net: str,
                     ordering: int, seed: int, iterations: int, mix_originals: bool, lr_schedule: str,
                     base_iter: int | None, snapshot_every: int, device: str, progress: bool) -> dict:
    """Base net ``net`` fine-tuned on the generated images ``keys`` (plus the originals when ``mix_originals``),
    in the random order ``seed``, into ``<folder>/<net>_order<ordering>`` (Sec. 5.2)."""
    data, generated = inputs["data"], inputs[f"generate/{net}"]
    result = {"set": set, "base": net, "train_images": len(keys), "weights": None}
    if not keys:
        return result  # no generated image of this set on this net: the row leaves it out
    mix = run / folder / f"{net}_order{ordering}.lmdb"
    if not (mix / "data.mdb").is_file():
        sources = [run / generated["lmdb"]] + ([run / data["train_lmdb"]] if mix_originals else [])
        write_shuffled_mix(mix, sources, seed=seed, select=[keys] + [None] * (len(sources) - 1))
    schedule = {"lr_schedule": lr_schedule, "base_iter": base_iter}
    trained = train(model, run / folder / f"{net}_order{ordering}",
                    _solver(seed, iterations, snapshot_every, **schedule), train_lmdb=mix,
                    test_lmdb=run / data["test_lmdb"], init_weights=run / inputs[f"train/{net}"]["weights"],
                    progress=progress, device=device)
    return {**result, "weights": str(trained.weights.relative_to(run.resolve()))}


def testset_unit(run: Path, inputs: dict, *, types: list[str], per_type: int, seed: int) -> dict:
    """The held-out adversarial test set (Sec. 5.2), as ``evaluate/testset.lmdb`` in a fixed order."""
    summaries = [(run / v["lmdb"], run / v["metadata"]) for v in inputs.values()]  # the nets, in order
    test_set = adversarial_test_set(summaries, types, per_type, seed)
    counts = {t: int((test_set["method"] == t).sum()) for t in types}
    path = run / "evaluate" / "testset.lmdb"
    if len(test_set["labels"]):
        write_datum_lmdb(path, test_set["images"], test_set["labels"], overwrite=True)
    return {"testset_lmdb": "evaluate/testset.lmdb" if len(test_set["labels"]) else None, "counts": counts,
            "metadata": [v["metadata"] for v in inputs.values()]}


def evaluate_unit(run: Path, inputs: dict, *, model: str, device: str = "cpu", progress: bool = False,
                  source: str = "") -> dict:
    """MNIST test error and held-out adversarial test error of one net (Table 1's two columns)."""
    testset = inputs["evaluate/testset"]
    (net_key,) = [k for k in inputs if k != "evaluate/testset"]
    info = inputs[net_key]
    base = net_key.split("/")[1] if net_key.startswith("train/") else info["base"]
    row = {"set": BASE_ROW if net_key.startswith("train/") else info["set"], "base": base,
           "train_images": 0 if net_key.startswith("train/") else info["train_images"], "weights": info["weights"]}
    if info["weights"] is None:
        return {**row, "mnist_error": None, "adv_error": None}
    clf = classifier_for(model, run / info["weights"], device)
    mnist = _mnist(source)
    adv = float("nan")
    if testset["testset_lmdb"]:
        arrays = read_datum_lmdb(run / testset["testset_lmdb"])
        adv = error_rate(clf, arrays.images, arrays.labels)
    return {**row, "mnist_error": error_rate(clf, mnist.test_images, mnist.test_labels), "adv_error": adv}


def report_unit(run: Path, inputs: dict, *, example_source: int | None, types: list[str], source: str = "") -> dict:
    """Table 1 and the figures into ``report/``; with Fig. 6 (``fig6/`` units) and the InfiMNIST share
    (``infimnist/share/`` units) when the graph has them (:mod:`hotcold.pipeline.graph`)."""
    testset = inputs["evaluate/testset"]
    split = inputs.get("fig6/split")
    shares = [v for k, v in inputs.items() if k.startswith("infimnist/share/")]
    evaluations = {k: v for k, v in inputs.items() if k.startswith("evaluate/") and k != "evaluate/testset"}
    fig6 = {k: v for k, v in evaluations.items() if k.startswith("evaluate/fig6/")}
    results = {k: v for k, v in evaluations.items() if k not in fig6 and v["mnist_error"] is not None}
    metadata = [str(run / m) for m in testset["metadata"]]
    grid = examples(metadata[0], _mnist(source).test_images, example_source, types)
    paths = write_report(run / "report", table_rows(results), metadata, examples=grid,
                         fig6=fig6_rows(fig6) if fig6 else None,
                         fig6_images=split["images_per_range"] if split else 0,
                         infimnist_share=[{k: s[k] for k in SHARE_KEYS} for s in shares] or None)
    return {"files": [str(Path(p).relative_to(run.resolve())) for p in paths]}

