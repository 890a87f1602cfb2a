"""Evaluation of Table 1 (Sec. 5.2): error rates and the held-out adversarial test set."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hotcold.caffe.lmdb_io import read_datum_lmdb
from hotcold.caffe.solver import check_int
from hotcold.core.classifier import Classifier
from hotcold.data.records import read_records
from hotcold.pipeline.stages import log
from hotcold.report import Example, ExampleGrid
from hotcold.report.fig6 import ALL_RANGE, FIG6_KEYS, range_bounds


def error_rate(classifier: Classifier, images: np.ndarray, labels: np.ndarray, batch: int = 1000) -> float:
    """Fraction of ``images`` that ``classifier`` misclassifies (the error rates of Table 1).

    Images go to ``classifier.classify`` ``batch`` at a time, so large test
    sets (the 70K held-out adversarial images of Sec. 5.2) need no more memory
    than one batch of logits.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"labels must hold one label per image ({len(images)}), got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("images is empty; an error rate needs at least one image")
    check_int("batch", batch, 1, "e.g. batch=1000")
    wrong = sum(int(np.count_nonzero(classifier.classify(images[i:i + batch]) != labels[i:i + batch]))
                for i in range(0, len(labels), batch))
    return wrong / len(labels)


def adversarial_test_set(summaries: list[tuple[Path, Path]], types: list[str], per_type: int,
                         seed: int) -> dict[str, np.ndarray]:
    """Equal numbers of images per type, drawn at random and evenly over the base nets (Sec. 5.2).

    ``summaries`` are the (LMDB, metadata.csv) pairs of the nets' generation
    runs. Each type gets min(per_type, what the scarcest type offers) images; a
    type with no image at all is left out (and logged) rather than emptying the set.

    Returns
    -------
    ``{"images": N x H x W uint8, "labels": N int64, "method": N str}``.
    """
    rng = np.random.default_rng(seed)
    pools: dict[str, list[list[tuple[int, str]]]] = {t: [] for t in types}
    arrays = []
    for s_index, (lmdb_path, metadata) in enumerate(summaries):
        records = read_records(metadata)
        arrays.append(read_datum_lmdb(lmdb_path))
        for t in types:
            keys = records.key[records.method == t].tolist()
            pools[t].append([(s_index, k) for k in rng.permutation(np.array(keys, dtype=object)).tolist()])
    empty = [t for t in types if not any(pools[t])]
    if empty:
        log(f"evaluate: no adversarial test image of type(s) {empty}; left out of the test set")
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


def table_rows(results: dict) -> list[dict]:
    """Table 1 rows: per training set, mean and std of the errors over its nets."""
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


def fig6_rows(results: dict[str, dict]) -> list[dict]:
    """Fig. 6's points: per PASS range (by its lower bound, "all" last), mean and std of both errors over its nets."""
    rows = []
    labels = {r["set"] for r in results.values()}
    for label in sorted(labels, key=lambda x: (x == ALL_RANGE, range_bounds(x)[0] if x != ALL_RANGE else 0)):
        infos = [r for r in results.values() if r["set"] == label and r["mnist_error"] is not None]
        if not infos:
            continue
        mnist_err = np.array([r["mnist_error"] for r in infos])
        adv_err = np.array([r["adv_error"] for r in infos])
        rows.append(dict(zip(FIG6_KEYS, (label, len(infos), float(mnist_err.mean()), float(mnist_err.std()),
                                         float(adv_err.mean()), float(adv_err.std()), infos[0]["train_images"]))))
    return rows


def examples(metadata: str, test_images: np.ndarray, source: int | None, types: list[str]) -> ExampleGrid | None:
    """Fig. 2 inputs: one original and its adversarial of every type found for it."""
    records = read_records(metadata)
    if not len(records):
        return None
    by_source: dict[int, dict[str, int]] = {}
    for row, (s, method) in enumerate(zip(records.source_index.tolist(), records.method.tolist())):
        by_source.setdefault(s, {})[method] = row
    if source is None:
        source = max(by_source, key=lambda s: (len(by_source[s]), -s))
    rows = by_source.get(source, {})
    arrays = read_datum_lmdb(Path(metadata).parent / "images.lmdb")
    index = {k: i for i, k in enumerate(arrays.keys)}
    found = [Example(t, arrays.images[index[records.key[rows[t]]]], float(records.pass_score[rows[t]]),
                     float(records.l2_input[rows[t]]), float(records.linf[rows[t]]),
                     int(records.predicted[rows[t]]))
             for t in types if t in rows]
    label = int(records.label[next(iter(rows.values()))]) if rows else None
    return ExampleGrid(test_images[source], found, label) if found else None
