"""The share of adversarials among InfiMNIST samples (Sec. 2), beside the paper's 2.199 +- 0.132%.

"We generated one million new examples with InfiMNIST and tested them on three
differently trained LeNet networks to identify adversarial examples among these
images ... 2.199+-0.132%": per base net, the fraction of the samples it does not
classify as their label; mean and std over the nets.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from hotcold._io import atomic_write

PAPER_INFIMNIST_SHARE = (2.199, 0.132)
"""Rozsa et al. 2016, Sec. 2: adversarials among 1M InfiMNIST samples on three LeNets, percent (mean, std)."""
SHARE_KEYS = ("base", "samples", "misclassified", "share")
"""One base net's measurement: its name, the samples classified, how many it got wrong, their fraction."""


def _checked(rows: Sequence[Mapping[str, object]]) -> list[dict]:
    if not rows:
        raise ValueError("the InfiMNIST share needs at least one base net's measurement")
    for i, row in enumerate(rows):
        if set(row) != set(SHARE_KEYS):
            raise ValueError(f"InfiMNIST share row {i}: keys {sorted(row)}; expected exactly {list(SHARE_KEYS)}")
    return [dict(r) for r in rows]


def share_markdown(rows: Sequence[Mapping[str, object]]) -> str:
    """Mean +- std (population) of the share over the base nets, beside the paper's number."""
    rows = _checked(rows)
    shares = np.array([r["share"] for r in rows], dtype=np.float64)
    samples = sorted({int(r["samples"]) for r in rows})
    paper_mean, paper_std = PAPER_INFIMNIST_SHARE
    return ("| InfiMNIST samples | Base nets | Adversarial share (mean ± std) | Paper (1M samples, 3 LeNets) |\n"
            "|---:|---:|---:|---:|\n"
            f"| {', '.join(f'{s:,}' for s in samples)} | {len(rows)} | {100 * shares.mean():.3f}% ± "
            f"{100 * shares.std():.3f}% | {paper_mean:.3f}% ± {paper_std:.3f}% |\n")


def write_share_csv(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str]) -> Path:
    """One line per base net (:data:`SHARE_KEYS`), the share as a fraction."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(SHARE_KEYS)
    for row in _checked(rows):
        writer.writerow([row[k] for k in SHARE_KEYS])
    path = Path(path)
    atomic_write(path, text.getvalue().encode())
    return path
