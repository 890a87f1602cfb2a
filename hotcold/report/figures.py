"""Figures shaped like the paper's: Fig. 2 (examples), Fig. 4 (PASS distributions), Fig. 5 (metrics).

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no
display); every PNG is written atomically, so a reader never sees half a file.
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hotcold._io import atomic_write
from hotcold.report.summary import Groups, Records, canonical_method, check_columns, finite, method_groups

_METRIC_COLORS = {"PASS": "tab:blue", "L2": "tab:orange", "L∞": "tab:green"}


# ----------------------------------------------------------------------------- files


def _save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------- figures


def _plotted(meta: Records, groups: Groups | None, column: str) -> list[tuple[str, np.ndarray]]:
    """Groups that have finite values of ``column``; ValueError when none has."""
    check_columns(meta, ("method", column))
    out = [(label, idx) for label, idx in method_groups(meta, groups) if finite(meta[column][idx]).size]
    if not out:
        raise ValueError(f"no images with a finite {column!r} to plot")
    return out


def plot_pass_distributions(meta: Records, path: str | os.PathLike[str], *,
                            groups: Groups | None = None) -> Path:
    """Fig. 4 ("PASS SCORES"): the distribution of PASS per method type, as a PNG.

    One panel per type with a histogram (bins 0.01 wide) of its PASS scores,
    the number of images and the mean in its title, the mean as a dashed line,
    and FGS's histogram outlined in gray behind it for comparison, as the
    paper compares every type with FGS. The x axis runs from 0.5 (lower when
    some PASS is) to 1.

    Parameters
    ----------
    meta:
        Records from :func:`hotcold.data.records.read_records` (``method`` and ``pass_score`` are used).
    path:
        The PNG to write.
    groups:
        Method types to draw, label -> method names or sets. Default: each
        method in ``meta`` on its own, ordered FGS, FGV, HC-D-k, HC-S-k, then
        scaled hard positives. To match the paper's Fig. 4, whose HC-D-X is the
        hot/cold images of the X closest classes, pass e.g. ``{"FGS": "FGS",
        "HC-D-9": "HC-D-1..9", "HC-S-9": "HC-S-1..9", "HC-D-9-1.05":
        "HC-D-1..9x1.05"}``. Types without images are left out.

    Raises
    ------
    ValueError
        When no type has a finite PASS score, or ``meta`` lacks a column.
    """
    plotted = _plotted(meta, groups, "pass_score")
    scores = {label: finite(meta["pass_score"][idx]) for label, idx in plotted}
    low = min(0.5, math.floor(10 * min(s.min() for s in scores.values())) / 10)
    edges = np.linspace(low, 1.0, round((1.0 - low) / 0.01) + 1)
    ncols = min(4, len(plotted))
    nrows = math.ceil(len(plotted) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    fgs = next((s for label, s in scores.items() if canonical_method(label) == "FGS"), None)
    for ax, (label, values) in zip(axes, scores.items()):
        ax.hist(values, bins=edges, color="tab:blue", alpha=0.75)
        if fgs is not None and values is not fgs:
            ax.hist(fgs, bins=edges, histtype="step", color="0.45", linewidth=1.0)
        ax.axvline(values.mean(), color="k", linestyle="--", linewidth=0.9)
        ax.set_title(f"{label} (n={values.size:,}, mean {values.mean():.3f})", fontsize=9.5)
        ax.tick_params(labelsize=8)
    for ax in axes[len(scores):]:
        ax.set_visible(False)
    for ax in axes[:len(scores)][-ncols:]:
        ax.set_xlabel("PASS")
        ax.xaxis.set_tick_params(labelbottom=True)
    for ax in axes[::ncols]:
        ax.set_ylabel("images")
    axes[0].set_xlim(low, 1.0)
    handles = [Patch(color="tab:blue", alpha=0.75, label="this type"),
               Line2D([], [], color="k", linestyle="--", linewidth=0.9, label="its mean PASS")]
    if fgs is not None:
        handles.insert(1, Patch(facecolor="none", edgecolor="0.45", label="FGS, for comparison"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    fig.suptitle("PASS distributions per method type (cf. Rozsa et al. 2016, Fig. 4)", fontsize=11)
    return _save_figure(fig, path)


def plot_metrics(meta: Records, path: str | os.PathLike[str], *,
                 groups: Groups | None = None) -> Path:
    """Fig. 5 ("METRICS"): PASS, L2 and L-inf side by side per method type, as a PNG.

    For each type, box plots of PASS, L2 (``l2``) and L-inf (``linf``):
    boxes span the quartiles, the line is the median, whiskers reach the 5th
    and 95th percentiles. "For visualization both L2 and L∞ distances are
    scaled so that max distances are 1": each is divided by its maximum over
    all plotted images, which the legend prints.

    Parameters
    ----------
    meta, path, groups:
        As for :func:`plot_pass_distributions`.

    Raises
    ------
    ValueError
        When no type has a finite PASS score, or ``meta`` lacks a column.
    """
    check_columns(meta, ("method", "pass_score", "l2", "linf"))
    plotted = _plotted(meta, groups, "pass_score")
    all_idx = np.concatenate([idx for _, idx in plotted])
    maxima = {}
    for column in ("l2", "linf"):
        values = finite(meta[column][all_idx])
        maxima[column] = float(values.max()) if values.size and values.max() > 0 else 1.0
    series = {
        "PASS": lambda idx: finite(meta["pass_score"][idx]),
        "L2": lambda idx: finite(meta["l2"][idx]) / maxima["l2"],
        "L∞": lambda idx: finite(meta["linf"][idx]) / maxima["linf"],
    }
    fig = Figure(figsize=(max(6.0, 0.75 * len(plotted) + 2.0), 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.26
    for offset, (metric, values_of) in zip((-width, 0.0, width), series.items()):
        data = [(i + offset, values_of(idx)) for i, (_, idx) in enumerate(plotted)]
        data = [(x, v) for x, v in data if v.size]
        if not data:
            continue
        boxes = ax.boxplot([v for _, v in data], positions=[x for x, _ in data], widths=0.8 * width,
                           whis=(5, 95), showfliers=False, patch_artist=True, manage_ticks=False,
                           medianprops={"color": "k", "linewidth": 1.0})
        for box in boxes["boxes"]:
            box.set_facecolor(_METRIC_COLORS[metric])
            box.set_alpha(0.8)
    ax.set_xticks(range(len(plotted)))
    ax.set_xticklabels([label for label, _ in plotted], rotation=45 if len(plotted) > 6 else 0,
                       ha="right" if len(plotted) > 6 else "center")
    ax.set_xlim(-0.6, len(plotted) - 0.4)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel("PASS; L2 and L∞ scaled to max 1")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(handles=[
        Patch(color=_METRIC_COLORS["PASS"], label="PASS"),
        Patch(color=_METRIC_COLORS["L2"], label=f"L2 / {maxima['l2']:.4g} (max)"),
        Patch(color=_METRIC_COLORS["L∞"], label=f"L∞ / {maxima['linf']:.4g} (max)"),
    ], fontsize=8, loc="outside lower center", ncols=3, frameon=False)
    ax.set_title("PASS, L2 and L∞ per method type (cf. Rozsa et al. 2016, Fig. 5)\n"
                 "boxes: quartiles and median; whiskers: 5th to 95th percentile", fontsize=10)
    return _save_figure(fig, path)


@dataclass(frozen=True)
class Example:
    """One generated image for Fig. 2: uint8 pixels and the metrics printed under it.

    Anything with these attributes works in its place, e.g. a
    :class:`hotcold.core.generator.GeneratedImage`.
    """

    method: str
    image: np.ndarray
    pass_score: float
    l2_input: float
    linf: float
    predicted: int


@dataclass(frozen=True)
class ExampleGrid:
    """The inputs of :func:`plot_examples`, for :func:`write_report`."""

    original: np.ndarray
    examples: Sequence[Example]
    label: int | None = None


def _pixels(image: np.ndarray, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ValueError(f"{name} must be H x W, H x W x 1 or H x W x 3, got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, the original has {shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold pixel values 0..255, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def plot_examples(original: np.ndarray, examples: Sequence[Example], path: str | os.PathLike[str], *,
                  label: int | None = None, ncols: int = 8) -> Path:
    """Fig. 2 ("ADVERSARIALS ON LENET/MNIST"): images and perturbations per method, as a PNG.

    The original comes first; then one column per example with its method on
    top, the generated image, its perturbation x~ - x below, and under that
    "PASS=0.979, L2=0.196, L∞=22" and the predicted label. As in Fig. 2's
    caption the perturbation is divided by its max |x~ - x|, then shown with
    black = -1, gray = no change, white = +1. L2 is ``l2_input`` (the paper's
    "L2" under Fig. 2 is in LeNet's input scale), L∞ in pixel levels.

    Parameters
    ----------
    original:
        The original image, uint8 H x W (or H x W x 3).
    examples:
        The generated images of the same shape, e.g. :class:`Example` or
        :class:`hotcold.core.generator.GeneratedImage` objects, in display order.
    path:
        The PNG to write.
    label:
        The original's label, printed under it.
    ncols:
        Columns per row, the original included; longer lists wrap.

    Raises
    ------
    ValueError
        For no examples, ``ncols < 2``, or an image whose shape differs from
        the original's.
    """
    if not examples:
        raise ValueError("examples is empty; give at least one generated image")
    if ncols < 2:
        raise ValueError(f"ncols must be >= 2 (the original and one example), got {ncols}")
    x = _pixels(original, "original")
    gray = {"cmap": "gray", "vmin": 0, "vmax": 255} if x.ndim == 2 else {}
    panels = len(examples) + 1
    ncols = min(ncols, panels)
    blocks = math.ceil(panels / ncols)
    fig = Figure(figsize=(1.55 * ncols, 3.9 * blocks), layout="constrained")
    axes = fig.subplots(2 * blocks, ncols, squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_frame_on(False)

    def cell(i: int) -> tuple:
        return axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]

    top, bottom = cell(0)
    top.imshow(x.astype(np.uint8), **gray)
    top.set_title("original", fontsize=9)
    top.set_xlabel("" if label is None else f"label {label}", fontsize=8)
    bottom.text(0.5, 0.5, "perturbation\nx̃ − x,\nscaled to [-1, 1]", ha="center", va="center",
                fontsize=8, transform=bottom.transAxes)
    for i, example in enumerate(examples, start=1):
        adv = _pixels(example.image, f"example {example.method!r}", x.shape)
        eta = adv - x
        peak = np.abs(eta).max()
        shown = 0.5 + 0.5 * (eta / peak if peak > 0 else eta)
        top, bottom = cell(i)
        top.imshow(adv.astype(np.uint8), **gray)
        top.set_title(example.method, fontsize=9)
        bottom.imshow(shown, **({"cmap": "gray", "vmin": 0.0, "vmax": 1.0} if x.ndim == 2 else {}))
        bottom.set_xlabel(
            f"PASS={example.pass_score:.3f}\nL2={example.l2_input:.3f}, L∞={example.linf:g}\n"
            f"predicted {example.predicted}",
            fontsize=7.5,
        )
    fig.suptitle("Generated images and perturbations (cf. Rozsa et al. 2016, Fig. 2)\n"
                 "perturbation / max |perturbation|: black = -1, gray = 0, white = +1", fontsize=9)
    return _save_figure(fig, path)
