"""Table 1 of the paper (Sec. 5.2): error rates per kind of training data, beside the paper's own numbers.

:func:`table1_markdown`, :func:`write_table1`, :func:`read_table1`; the
paper's rows are :data:`PAPER_TABLE1`. Files are written atomically.
"""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hotcold._io import atomic_write


@dataclass(frozen=True)
class PaperResult:
    """One row of the paper's Table 1, in percent as printed there."""

    mnist_error: float
    mnist_error_std: float | None
    """None where the paper prints no std (the Goodfellow row, quoted from Goodfellow et al.)."""
    adv_error: float


PAPER_TABLE1: dict[str, PaperResult] = {
    "HC-D-9-1.05": PaperResult(0.673, 0.035, 14.85),
    "HC-D-9": PaperResult(0.683, 0.057, 21.10),
    "InfiMNIST (1M)": PaperResult(0.697, 0.021, 48.35),
    "FGV": PaperResult(0.697, 0.031, 29.61),
    "HC-D-5": PaperResult(0.723, 0.047, 21.52),
    "HC-S-5": PaperResult(0.733, 0.032, 29.29),
    "Goodfellow et al.": PaperResult(0.782, None, 17.9),
    "FGS": PaperResult(0.790, 0.122, 31.06),
    "Basic LeNet": PaperResult(0.937, 0.110, 64.21),
}
"""Rozsa et al. 2016, Table 1: MNIST test error (mean, std over 9 nets) and
adversarial test error, in percent. The Goodfellow row is marked * there: it is
quoted from Goodfellow et al. (a maxout net trained with their adversarial
objective), with no std. A row named ``InfiMNIST (<N>)`` or ``InfiMNIST-style (<N>)`` (hotcold's
approximation of the data) is set beside the paper's "InfiMNIST (1M)" whatever its N (the Added images
column says N)."""

TABLE1_KEYS = ("training_data", "nets", "mnist_error_mean", "mnist_error_std",
               "adv_error_mean", "adv_error_std", "train_images")
"""Keys of one Table 1 row; errors are fractions (0.0093 = 0.93%)."""

_PAPER_CSV_KEYS = ("paper_mnist_error_mean", "paper_mnist_error_std", "paper_adv_error_mean")



# ----------------------------------------------------------------------------- Table 1


def _normalized(name: str) -> str:
    return " ".join(name.lower().split())


_PAPER_BY_NAME = {_normalized(name): result for name, result in PAPER_TABLE1.items()}


def _paper_result(training_data: str) -> PaperResult | None:
    """The paper's row for ``training_data``, matched ignoring case and extra spaces (InfiMNIST at any size)."""
    name = _normalized(training_data)
    if name.startswith(("infimnist (", "infimnist-style (")):
        name = _normalized("InfiMNIST (1M)")
    return _PAPER_BY_NAME.get(name)


def _paper_cell(paper: PaperResult | None) -> str:
    if paper is None:
        return "—"
    std = "" if paper.mnist_error_std is None else f" ± {paper.mnist_error_std:.3f}%"
    return f"{paper.mnist_error:.3f}%{std} / {paper.adv_error:.2f}%"


def checked_rows(rows: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """Validate Table 1 rows and sort them by MNIST error, ascending as in the paper."""
    out = []
    for i, row in enumerate(rows):
        missing = [k for k in TABLE1_KEYS if k not in row]
        unknown = sorted(set(row) - set(TABLE1_KEYS))
        if missing or unknown:
            raise ValueError(
                f"Table 1 row {i}: missing keys {missing}, unknown keys {unknown}; "
                f"a row has exactly the keys {list(TABLE1_KEYS)}"
            )
        name = row["training_data"]
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Table 1 row {i}: training_data must be a non-empty string, got {name!r}")
        checked: dict[str, object] = {"training_data": name.strip()}
        for key, least in (("nets", 1), ("train_images", 0)):
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise ValueError(f"Table 1 row {name!r}: {key} must be an integer >= {least}, got {value!r}")
            checked[key] = int(value)
        for key in ("mnist_error_mean", "mnist_error_std", "adv_error_mean", "adv_error_std"):
            value = float(row[key])
            if not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"Table 1 row {name!r}: {key} must be a fraction in [0, 1] (0.0093 = 0.93%; "
                    f"use 0.0 as the std of a single net), got {row[key]!r}"
                )
            checked[key] = value
        out.append(checked)
    return sorted(out, key=lambda r: r["mnist_error_mean"])


def _percent(mean: float, std: float) -> str:
    return f"{100 * mean:.3f}% ± {100 * std:.3f}%"


def table1_markdown(rows: Iterable[Mapping[str, object]], *, reference: bool = True) -> str:
    """Table 1 of the paper ("ERROR RATES") as a Markdown table.

    Rows are sorted by MNIST test error, ascending, as in the paper. Errors
    are printed as percentages with 3 decimals, ``0.673% ± 0.035%``.

    Parameters
    ----------
    rows:
        Mappings with exactly the keys :data:`TABLE1_KEYS`: ``training_data``
        (e.g. ``"basic LeNet"``, ``"FGS"``, ``"HC-D-9-1.05"``), ``nets``
        (nets averaged over; 9 in the paper: 3 base nets fine-tuned 3 times),
        the means and standard deviations of both errors as fractions, and
        ``train_images``, the generated images added to training (0 for the
        basic net).
    reference:
        Add a column with the paper's numbers (:data:`PAPER_TABLE1`, percent,
        as printed there) for rows whose ``training_data`` names one of the
        paper's rows, ignoring case; "—" for the others.

    Raises
    ------
    ValueError
        For a row with missing or unknown keys, or an error outside [0, 1].
    """
    header = ["Training data", "MNIST test error (mean ± std)", "Adversarial test error (mean ± std)",
              "Nets", "Added images"]
    align = ["---", "---:", "---:", "---:", "---:"]
    if reference:
        header.append("Paper, Table 1 (MNIST / adversarial)")
        align.append("---:")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in checked_rows(rows):
        cells = [
            str(row["training_data"]),
            _percent(row["mnist_error_mean"], row["mnist_error_std"]),
            _percent(row["adv_error_mean"], row["adv_error_std"]),
            str(row["nets"]),
            f"{row['train_images']:,}",
        ]
        if reference:
            cells.append(_paper_cell(_paper_result(row["training_data"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_table1(rows: Iterable[Mapping[str, object]], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write Table 1 as ``table1.md`` (:func:`table1_markdown`) and ``table1.csv``.

    The CSV holds the rows in the same order with errors as fractions at full
    precision (:func:`read_table1` reads them back exactly), plus the paper's
    numbers as fractions in ``paper_*`` columns, empty where the paper has no
    such row.

    Returns
    -------
    (md_path, csv_path)
    """
    rows = checked_rows(rows)
    out_dir = Path(out_dir)
    md_path, csv_path = out_dir / "table1.md", out_dir / "table1.csv"
    caption = (
        "\nTable 1 (cf. Rozsa et al. 2016, Table 1): test error of LeNets trained on each kind of data, "
        "mean ± std over the nets; the adversarial test set mixes all generated types from all nets.\n"
    )
    atomic_write(md_path, (table1_markdown(rows) + caption).encode())
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*TABLE1_KEYS, *_PAPER_CSV_KEYS])
    for row in rows:
        paper = _paper_result(row["training_data"])
        paper_cells = (
            ["", "", ""] if paper is None
            else [paper.mnist_error / 100, "" if paper.mnist_error_std is None else paper.mnist_error_std / 100,
                  paper.adv_error / 100]
        )
        writer.writerow([*(row[k] for k in TABLE1_KEYS), *paper_cells])
    atomic_write(csv_path, text.getvalue().encode())
    return md_path, csv_path


def read_table1(path: str | os.PathLike[str]) -> list[dict[str, object]]:
    """Read the rows of a ``table1.csv`` written by :func:`write_table1` (without ``paper_*``)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        records = list(reader)
    missing = [k for k in TABLE1_KEYS if k not in (reader.fieldnames or ())]
    if missing:
        raise ValueError(f"{path}: missing Table 1 columns {missing}")
    rows = [
        {
            "training_data": r["training_data"],
            "nets": int(r["nets"]),
            "mnist_error_mean": float(r["mnist_error_mean"]),
            "mnist_error_std": float(r["mnist_error_std"]),
            "adv_error_mean": float(r["adv_error_mean"]),
            "adv_error_std": float(r["adv_error_std"]),
            "train_images": int(r["train_images"]),
        }
        for r in records
    ]
    return checked_rows(rows)
