"""Fig. 6 of the paper ("PASS SCORES", Sec. 5.2): test errors of nets fine-tuned on one PASS range each.

The paper prints no numbers for Fig. 6, only what it shows: "networks trained
on data with the highest PASS scores have higher MNIST test error and much
higher adversarial test error", and "training on images of intermediate PASS
values produces better results than training using only images with either
the highest or lowest PASS scores". :func:`fig6_markdown` states those claims
beside the measured points and whether this run shows them (the highest range worst on each error; an
intermediate range better than both extremes).
"""
from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hotcold._io import atomic_write

ALL_RANGE = "all"
"""Fig. 6's bar of images of any PASS."""
FIG6_KEYS = ("pass_range", "nets", "mnist_error_mean", "mnist_error_std", "adv_error_mean", "adv_error_std",
             "train_images")
"""One point of Fig. 6: the PASS range (``"0.8-0.9"`` or ``"all"``), errors as fractions, images per net."""


def range_bounds(label: str) -> tuple[float, float]:
    """The (low, high) of a PASS range's label ``"0.8-0.9"`` (bounds may be written ``1e-05``)."""
    match = re.fullmatch(r"(.*?[^e])-(.+)", label)
    if match is None:
        raise ValueError(f"{label!r} is not a PASS range label such as '0.8-0.9'")
    return float(match.group(1)), float(match.group(2))


def _display(label: str) -> str:
    if label == ALL_RANGE:
        return "all"
    low, high = range_bounds(label)
    return f"[{low!r}, {high!r}{']' if high >= 1.0 else ')'}"


def _checked(rows: Sequence[Mapping[str, object]]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        if set(row) != set(FIG6_KEYS):
            raise ValueError(f"Fig. 6 row {i}: keys {sorted(row)}; a row has exactly the keys {list(FIG6_KEYS)}")
        out.append(dict(row))
    if not out:
        raise ValueError("Fig. 6 needs at least one PASS range with a fine-tuned net")
    return out


def plot_fig6(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str], *, images_per_range: int) -> Path:
    """Fig. 6 as a PNG: MNIST and adversarial test error (mean, std bars) per PASS range of the training images."""
    rows = _checked(rows)
    fig = Figure(figsize=(7.5, 3.4))
    labels = [_display(r["pass_range"]) for r in rows]
    x = list(range(len(rows)))
    for ax, key, title in ((fig.add_subplot(1, 2, 1), "mnist_error", "MNIST test error"),
                           (fig.add_subplot(1, 2, 2), "adv_error", "adversarial test error")):
        means = [100 * r[f"{key}_mean"] for r in rows]
        stds = [100 * r[f"{key}_std"] for r in rows]
        ax.bar(x, means, yerr=stds, color=["tab:gray" if r["pass_range"] == ALL_RANGE else "tab:blue" for r in rows],
               capsize=3)
        ax.set_xticks(x, labels, rotation=30, fontsize=8)
        ax.set_xlabel("PASS of the training images")
        ax.set_ylabel("error (%)")
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"Fig. 6: fine-tuned on {images_per_range:,} generated images per PASS range and net", fontsize=10)
    fig.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    path = Path(path)
    atomic_write(path, buffer.getvalue())
    return path


def write_fig6_csv(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str]) -> Path:
    """Fig. 6's points as CSV (:data:`FIG6_KEYS`, errors as fractions at full precision)."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(FIG6_KEYS)
    for row in _checked(rows):
        writer.writerow([row[k] for k in FIG6_KEYS])
    path = Path(path)
    atomic_write(path, text.getvalue().encode())
    return path


def fig6_markdown(rows: Sequence[Mapping[str, object]], *, images_per_range: int) -> str:
    """Fig. 6's points as a Markdown table, with the paper's claims about it and whether this run shows them."""
    rows = _checked(rows)
    lines = [f"Fine-tuned on {images_per_range:,} generated images per PASS range and base net "
             "(the smallest range's count).\n",
             "| PASS range | MNIST test error | Adversarial test error | Nets |", "|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {_display(r['pass_range'])} | {100 * r['mnist_error_mean']:.3f}% ± "
                     f"{100 * r['mnist_error_std']:.3f}% | {100 * r['adv_error_mean']:.2f}% ± "
                     f"{100 * r['adv_error_std']:.2f}% | {r['nets']} |")
    ranged = [r for r in rows if r["pass_range"] != ALL_RANGE]
    if len(ranged) >= 2:
        top = max(ranged, key=lambda r: range_bounds(r["pass_range"])[0])
        worst_mnist = max(ranged, key=lambda r: r["mnist_error_mean"]) is top
        worst_adv = max(ranged, key=lambda r: r["adv_error_mean"]) is top
        lines += ["", "| Paper (Fig. 6 caption, Sec. 5.2) | This run |", "|---|---|",
                  f"| the highest PASS range has the highest MNIST test error | "
                  f"{'yes' if worst_mnist else 'no'} ({_display(top['pass_range'])}) |",
                  f"| the highest PASS range has (much) the highest adversarial test error | "
                  f"{'yes' if worst_adv else 'no'} |"]
    if len(ranged) >= 3:
        low = min(ranged, key=lambda r: range_bounds(r["pass_range"])[0])
        better = [r for r in ranged if r is not low and r is not top
                  and all(r[k] < min(low[k], top[k]) for k in ("mnist_error_mean", "adv_error_mean"))]
        lines.append("| an intermediate range trains better than both the lowest and the highest (both errors) | "
                     + (f"yes ({', '.join(_display(r['pass_range']) for r in better)})" if better else "no") + " |")
    return "\n".join(lines) + "\n"
