"""Table 1's "InfiMNIST (1M)" row and the share of adversarials among InfiMNIST samples (Sec. 2, Sec. 5.2).

"We generated 1M images with InfiMNIST and trained three networks for 30K
iterations" (Sec. 5.2); "We generated one million new examples with InfiMNIST
and tested them on three differently trained LeNet networks to identify
adversarial examples among these images" (Sec. 2).

| unit | does | writes |
|---|---|---|
| ``infimnist/data`` | ``infimnist.samples`` InfiMNIST(-style) samples from index ``infimnist.first`` (:mod:`hotcold.data.infimnist`) | ``infimnist/samples/`` |
| ``infimnist/train/net<i>`` | a LeNet from scratch on its own shuffled copy of the samples, seed + i, ``infimnist.iterations`` | ``infimnist/net<i>/`` |
| ``evaluate/infimnist/net<i>`` | its MNIST and held-out adversarial test error: Table 1's InfiMNIST row | (its manifest) |
| ``infimnist/share/base<i>`` | the share of the samples that base net i misclassifies | (its manifest) |
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hotcold.caffe.lmdb_io import iter_datum_lmdb, shuffled_copy
from hotcold.caffe.train import train
from hotcold.data.infimnist import write_infimnist_lmdb
from hotcold.pipeline.config import Experiment
from hotcold.pipeline.table1 import _mnist, _solver, classifier_for, evaluate_unit
from hotcold.pipeline.units import Unit

DATA = "infimnist/data"


def row_name(samples: int, *, original: bool) -> str:
    """Table 1's row: ``InfiMNIST (1M)`` for the paper's million, ``InfiMNIST (20K)``, ``InfiMNIST (12345)``;
    ``InfiMNIST-style (...)`` when the samples come from hotcold's own deformation fields and tangent vectors
    rather than InfiMNIST's data files (``original`` False; docs/infimnist.md)."""
    name = "InfiMNIST" if original else "InfiMNIST-style"
    for unit, suffix in ((1000000, "M"), (1000, "K")):
        if samples % unit == 0:
            return f"{name} ({samples // unit}{suffix})"
    return f"{name} ({samples})"


def infimnist_units(exp: Experiment, base: list[str], local: dict) -> tuple[list[Unit], list[str]]:
    """The units of the InfiMNIST row and share, and the keys the report takes (evaluations and shares)."""
    m = exp.infimnist
    units = [Unit(DATA, data_unit, {"samples": m.samples, "first": m.first, "data": m.data},
                  owns=("infimnist/samples",), local={"source": local["source"]})]
    reported = []
    for i in range(m.nets):
        key = f"infimnist/train/net{i}"
        units.append(Unit(key, train_unit, {
            "model": exp.model, "index": i, "seed": exp.seed + i, "iterations": m.iterations,
            "snapshot_every": min(exp.train.snapshot_every, m.iterations),
            "row": row_name(m.samples, original=m.data is not None)},
            needs=("data", DATA), owns=(f"infimnist/net{i}", f"infimnist/order_net{i}.lmdb"), local=local))
        units.append(Unit(f"evaluate/infimnist/net{i}", evaluate_unit, {"model": exp.model},
                          needs=("evaluate/testset", key), local=local))
        reported.append(f"evaluate/infimnist/net{i}")
    for net in base:
        units.append(Unit(f"infimnist/share/{net}", share_unit, {"model": exp.model, "net": net},
                          needs=(DATA, f"train/{net}"), local=local))
        reported.append(f"infimnist/share/{net}")
    return units, reported


def data_unit(run: Path, inputs: dict, *, samples: int, first: int, data: str | None, source: str) -> dict:
    """The InfiMNIST samples as ``infimnist/samples/images.lmdb`` (resumes from its last stored batch)."""
    summary = write_infimnist_lmdb(run / "infimnist" / "samples", samples, _mnist(source), first=first, data_dir=data)
    return {"lmdb": "infimnist/samples/images.lmdb", "samples": samples, "original": summary.original}


def train_unit(run: Path, inputs: dict, *, model: str, index: int, seed: int, iterations: int, snapshot_every: int,
               row: str, device: str = "cpu", progress: bool = False, source: str = "") -> dict:
    """LeNet ``index`` trained from scratch on InfiMNIST samples in its own random order (Sec. 5.2)."""
    order = shuffled_copy(run / inputs[DATA]["lmdb"], run / "infimnist" / f"order_net{index}.lmdb", seed=seed)
    result = train(model, run / "infimnist" / f"net{index}", _solver(seed, iterations, snapshot_every),
                   train_lmdb=order, test_lmdb=run / inputs["data"]["test_lmdb"], progress=progress, device=device)
    return {"set": row, "base": f"infimnist{index}", "train_images": inputs[DATA]["samples"],
            "weights": str(result.weights.relative_to(run.resolve()))}


def share_unit(run: Path, inputs: dict, *, model: str, net: str, device: str = "cpu", progress: bool = False,
               source: str = "") -> dict:
    """How many InfiMNIST samples base net ``net`` misclassifies (Sec. 2's adversarial share)."""
    clf = classifier_for(model, run / inputs[f"train/{net}"]["weights"], device)
    wrong = total = 0
    for batch in iter_datum_lmdb(run / inputs[DATA]["lmdb"], batch_size=10000):
        wrong += int(np.count_nonzero(clf.classify(batch.images) != batch.labels))
        total += len(batch.labels)
    return {"base": net, "samples": total, "misclassified": wrong, "share": wrong / total}
