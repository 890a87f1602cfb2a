"""Table 1's "Goodfellow*" row: fine-tuning with Goodfellow et al.'s adversarial objective (Sec. 5.2).

Table 1 quotes this row from Goodfellow et al. (".782% / 17.9%", marked *). Here
it is reproduced under Table 1's own protocol: each base net is fine-tuned
``finetune.orderings`` times (seeds as the other rows), on the 60K MNIST
originals in that ordering, with the objective alpha J(x) + (1 - alpha)
J(x + eps sign(grad_x J)) whose FGS images come from the current weights at
every batch (:class:`hotcold.caffe.adversarial_training.AdversarialObjective`),
then evaluated on the same tests. Why fine-tuning and not training from
scratch: docs/goodfellow.md.

| unit | does | writes |
|---|---|---|
| ``goodfellow/base<i>_order<o>`` | base net i fine-tuned with the adversarial objective | ``goodfellow/`` |
| ``evaluate/goodfellow/base<i>_order<o>`` | its MNIST and held-out adversarial test error | (its manifest) |
"""
from __future__ import annotations

from pathlib import Path

from hotcold.caffe.adversarial_training import AdversarialObjective
from hotcold.caffe.lmdb_io import shuffled_copy
from hotcold.caffe.train import train
from hotcold.caffe.zoo import load_model
from hotcold.pipeline.config import Experiment
from hotcold.pipeline.table1 import _solver, evaluate_unit
from hotcold.pipeline.units import Unit

ROW = "Goodfellow et al."
"""Table 1's row name (the paper: "Goodfellow et al. [8]")."""


def goodfellow_units(exp: Experiment, base: list[str], local: dict) -> tuple[list[Unit], list[str]]:
    """The units of the Goodfellow row and the keys of its evaluations."""
    g = exp.goodfellow
    units, evaluated = [], []
    for i, net in enumerate(base):
        for o in range(exp.finetune.orderings):
            key = f"goodfellow/{net}_order{o}"
            units.append(Unit(key, goodfellow_unit, {
                "model": exp.model, "net": net, "ordering": o, "seed": exp.seed + 1000 * (o + 1) + i,
                "iterations": g.iterations or exp.finetune.iterations, "alpha": g.alpha, "eps": g.eps,
                "lr_schedule": exp.finetune.lr_schedule,
                "base_iter": exp.train.iterations if exp.finetune.lr_schedule == "continue" else None,
                "snapshot_every": exp.train.snapshot_every},
                needs=("data", f"train/{net}"), owns=(key, f"{key}.lmdb"), local=local))
            units.append(Unit(f"evaluate/{key}", evaluate_unit, {"model": exp.model},
                              needs=("evaluate/testset", key), local=local))
            evaluated.append(f"evaluate/{key}")
    return units, evaluated


def goodfellow_unit(run: Path, inputs: dict, *, model: str, net: str, ordering: int, seed: int, iterations: int,
                    alpha: float, eps: float, lr_schedule: str, base_iter: int | None, snapshot_every: int,
                    device: str = "cpu", progress: bool = False, source: str = "") -> dict:
    """Base net ``net`` fine-tuned on MNIST in the random order ``seed`` with the adversarial objective."""
    data = inputs["data"]
    folder = run / "goodfellow"
    order = shuffled_copy(run / data["train_lmdb"], folder / f"{net}_order{ordering}.lmdb", seed=seed)
    objective = AdversarialObjective(alpha=alpha, eps=eps, input_scale=load_model(model).input_scale)
    result = train(model, folder / f"{net}_order{ordering}",
                   _solver(seed, iterations, snapshot_every, lr_schedule=lr_schedule, base_iter=base_iter),
                   train_lmdb=order, test_lmdb=run / data["test_lmdb"],
                   init_weights=run / inputs[f"train/{net}"]["weights"], objective=objective, progress=progress,
                   device=device)
    return {"set": ROW, "base": net, "train_images": 0, "weights": str(result.weights.relative_to(run.resolve()))}
