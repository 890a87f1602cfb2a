"""Fig. 6 of the paper (Sec. 5.2): fine-tuning on generated images of one PASS range at a time.

"networks trained using generated hard positives with different ranges of PASS
scores ... networks trained on data with the highest PASS scores have higher
MNIST test error and much higher adversarial test error ... training using data
only with PASS scores in the 800-900 range still does well in adversarial testing."

| unit | does | writes |
|---|---|---|
| ``fig6/split`` | per base net, the generated images of ``fig6.methods`` by PASS range; the same number per range (the smallest range's count, over all nets), drawn at random | ``fig6/split.json`` |
| ``fig6/<range>/base<i>_order<o>`` | base net i fine-tuned on its images of one range (plus the originals, as Table 1's rows) | ``fig6/<range>/`` |
| ``evaluate/fig6/<range>/base<i>_order<o>`` | MNIST and held-out adversarial test error (the same test set as Table 1) | (its manifest) |

The base nets, their generated images, the orderings' seeds and the
adversarial test set are Table 1's units (:mod:`hotcold.pipeline.table1`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hotcold._io import atomic_write
from hotcold.caffe.zoo import load_model
from hotcold.core.methods import parse_methods, with_scales
from hotcold.data.records import read_records
from hotcold.pipeline.config import Experiment
from hotcold.pipeline.stages import log
from hotcold.pipeline.table1 import evaluate_unit, finetune_on_keys
from hotcold.pipeline.units import Unit
from hotcold.report.fig6 import ALL_RANGE

SPLIT = "fig6/split"


def range_label(low: float, high: float) -> str:
    """``"0.8-0.9"``: a PASS range's name in unit keys and folders."""
    return f"{float(low)!r}-{float(high)!r}"


def pass_range_masks(pass_scores: np.ndarray, ranges: list[list[float]], *,
                     include_all: bool) -> dict[str, np.ndarray]:
    """Which images fall in each PASS range (Fig. 6): ``{label: boolean mask}``, ranges in order, then "all".

    A range is [low, high); one that ends at 1.0 includes PASS = 1. "all"
    takes every image, whatever its PASS (a missing PASS included).
    """
    scores = np.asarray(pass_scores, dtype=np.float64)
    masks = {}
    for low, high in ranges:
        upper = scores <= high if high >= 1.0 else scores < high
        masks[range_label(low, high)] = (scores >= low) & upper
    if include_all:
        masks[ALL_RANGE] = np.ones(len(scores), dtype=bool)
    return masks


def split_by_pass(nets: dict[str, tuple[np.ndarray, np.ndarray]], ranges: list[list[float]], *, include_all: bool,
                  seed: int) -> tuple[int, dict[str, dict[str, int]], dict[str, dict[str, list[str]]]]:
    """Equal numbers of training images per PASS range (Fig. 6): ``(n, counts, keys)``.

    ``nets`` maps a base net to the ``(keys, pass scores)`` of its generated
    images. ``n`` is the smallest count of a range on any net, ranges without
    any image left out (logged); each (net, range) gets ``n`` keys drawn at
    random with ``numpy.random.default_rng(seed)``, sorted. ``counts`` holds
    what each range offered.
    """
    rng = np.random.default_rng(seed)
    masks = {net: pass_range_masks(scores, ranges, include_all=include_all) for net, (_, scores) in nets.items()}
    counts = {net: {label: int(m.sum()) for label, m in by_range.items()} for net, by_range in masks.items()}
    labels = list(next(iter(masks.values())))
    empty = [label for label in labels if any(counts[net][label] == 0 for net in nets)]
    if empty:
        log(f"fig6: no generated image in PASS range(s) {empty} on some net; left out of Fig. 6")
    kept = [label for label in labels if label not in empty]
    n = min((counts[net][label] for net in nets for label in kept), default=0)
    chosen: dict[str, dict[str, list[str]]] = {}
    for net, (keys, _) in nets.items():
        keys = np.asarray(keys, dtype=object)
        chosen[net] = {label: sorted(rng.choice(keys[masks[net][label]], size=n, replace=False).tolist())
                       for label in kept}
    return n, counts, chosen


def fig6_units(exp: Experiment, base: list[str], local: dict) -> tuple[list[Unit], list[str]]:
    """The units of Fig. 6 and the keys of its evaluations (for the report)."""
    f = exp.fig6
    # The same images Table 1's sets take: generate.scales applies here too.
    methods = [m.name for m in with_scales(parse_methods(f.methods, num_classes=load_model(exp.model).num_classes),
                                           exp.generate.scales)]
    units = [Unit(SPLIT, split_unit, {"methods": methods, "ranges": f.ranges, "include_all": f.include_all,
                                      "seed": exp.seed}, needs=tuple(f"generate/{net}" for net in base),
                  owns=("fig6/split.json",))]
    labels = [range_label(low, high) for low, high in f.ranges] + ([ALL_RANGE] if f.include_all else [])
    evaluated = []
    for label in labels:
        for i, net in enumerate(base):
            for o in range(f.orderings or exp.finetune.orderings):
                key = f"fig6/{label}/{net}_order{o}"
                units.append(Unit(key, fig6_finetune_unit, {
                    "model": exp.model, "pass_range": label, "net": net, "ordering": o,
                    "seed": exp.seed + 1000 * (o + 1) + i, "iterations": f.iterations or exp.finetune.iterations,
                    "mix_originals": exp.finetune.mix_originals, "lr_schedule": exp.finetune.lr_schedule,
                    "base_iter": exp.train.iterations if exp.finetune.lr_schedule == "continue" else None,
                    "snapshot_every": exp.train.snapshot_every},
                    needs=("data", f"train/{net}", f"generate/{net}", SPLIT),
                    owns=(f"fig6/{label}/{net}_order{o}", f"fig6/{label}/{net}_order{o}.lmdb"), local=local))
                evaluated.append(f"evaluate/{key}")
                units.append(Unit(f"evaluate/{key}", evaluate_unit, {"model": exp.model},
                                  needs=("evaluate/testset", key), local=local))
    return units, evaluated


def split_unit(run: Path, inputs: dict, *, methods: list[str], ranges: list[list[float]], include_all: bool,
               seed: int) -> dict:
    """``fig6/split.json``: per base net and PASS range, the generated images to fine-tune on."""
    nets = {}
    for key, generated in sorted(inputs.items()):
        records = read_records(run / generated["metadata"])
        chosen = np.isin(records.method, methods)
        nets[key.split("/")[1]] = (records.key[chosen], records.pass_score[chosen])
    n, counts, keys = split_by_pass(nets, ranges, include_all=include_all, seed=seed)
    path = run / "fig6" / "split.json"
    atomic_write(path, json.dumps({"images_per_range": n, "counts": counts, "keys": keys}, sort_keys=True) + "\n")
    return {"split_path": "fig6/split.json", "images_per_range": n, "counts": counts}


def fig6_finetune_unit(run: Path, inputs: dict, *, model: str, pass_range: str, net: str, ordering: int, seed: int,
                       iterations: int, mix_originals: bool, lr_schedule: str, base_iter: int | None,
                       snapshot_every: int, device: str = "cpu", progress: bool = False, source: str = "") -> dict:
    """Base net ``net`` fine-tuned on its generated images of one PASS range (Fig. 6)."""
    split = json.loads((run / inputs[SPLIT]["split_path"]).read_text())
    keys = split["keys"][net].get(pass_range, [])
    return finetune_on_keys(run, inputs, keys, model=model, set=pass_range, folder=f"fig6/{pass_range}", net=net,
                            ordering=ordering, seed=seed, iterations=iterations, mix_originals=mix_originals,
                            lr_schedule=lr_schedule, base_iter=base_iter, snapshot_every=snapshot_every,
                            device=device, progress=progress)
