"""Tables and figures of a hotcold run, shaped like the paper's (Rozsa et al. 2016, Sec. 5).

* :func:`table1_markdown`, :func:`write_table1`, :func:`read_table1`: Table 1,
  MNIST and adversarial test error of nets fine-tuned on each kind of training
  data, next to the paper's own numbers (:data:`PAPER_TABLE1`).
* :func:`read_metadata`: the runner's per-image metadata CSVs as numpy columns.
* :func:`summarize_metadata`: images, acceptance and mean PASS / L2 / L-inf per
  method type.
* :func:`plot_pass_distributions` (Fig. 4), :func:`plot_metrics` (Fig. 5),
  :func:`plot_examples` (Fig. 2).
* :func:`write_report`: all of the above into one folder with a ``report.md``.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot,
no display), and every file is written atomically (temporary file, then
``os.replace``), so a reader never sees half a table or half a PNG.
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from hotcold._io import atomic_write
from hotcold.methods import FAMILIES, parse_methods

__all__ = [
    "PAPER_TABLE1", "PaperResult", "TABLE1_KEYS", "METADATA_COLUMNS", "MethodSummary", "Example",
    "ExampleGrid", "table1_markdown", "write_table1", "read_table1", "read_metadata",
    "summarize_metadata", "plot_pass_distributions", "plot_metrics", "plot_examples", "write_report",
]


@dataclass(frozen=True)
class PaperResult:
    """One row of the paper's Table 1, in percent as printed there."""

    mnist_error: float
    mnist_error_std: float
    adv_error: float


PAPER_TABLE1: dict[str, PaperResult] = {
    "HC-D-9-1.05": PaperResult(0.673, 0.035, 14.85),
    "HC-D-9": PaperResult(0.683, 0.057, 21.10),
    "InfiMNIST (1M)": PaperResult(0.697, 0.021, 48.35),
    "FGV": PaperResult(0.697, 0.031, 29.61),
    "HC-D-5": PaperResult(0.723, 0.047, 21.52),
    "HC-S-5": PaperResult(0.733, 0.032, 29.29),
    "FGS": PaperResult(0.790, 0.122, 31.06),
    "Basic LeNet": PaperResult(0.937, 0.110, 64.21),
}
"""Rozsa et al. 2016, Table 1: MNIST test error (mean, std over 9 nets) and
adversarial test error, in percent. Goodfellow et al.'s row (.782%, 17.9%) is
left out: it trained with a modified objective, not on a set of images."""

TABLE1_KEYS = ("training_data", "nets", "mnist_error_mean", "mnist_error_std",
               "adv_error_mean", "adv_error_std", "train_images")
"""Keys of one Table 1 row; errors are fractions (0.0093 = 0.93%)."""

_PAPER_CSV_KEYS = ("paper_mnist_error_mean", "paper_mnist_error_std", "paper_adv_error_mean")

METADATA_COLUMNS: dict[str, type] = {
    "key": str, "method": str, "source_index": int, "net": str, "label": int, "predicted": int,
    "hot_class": int, "eps": float, "scale": float, "pass_score": float, "pass_converged": bool,
    "l2": float, "l2_per_pixel": float, "linf": float, "l2_input": float, "forward_passes": int,
    "accepted": bool,
}
"""Columns of the runner's metadata CSV (one row per generated image) and their types."""

_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no")
_METRIC_COLORS = {"PASS": "tab:blue", "L2": "tab:orange", "L∞": "tab:green"}

Groups = Mapping[str, str | Sequence[str]]
"""Method types: label -> method names or sets, e.g. ``{"HC-D-9": "HC-D-1..9"}``."""


# ----------------------------------------------------------------------------- files


def _save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    atomic_write(path, buffer.getvalue())
    return path


# ----------------------------------------------------------------------------- Table 1


def _normalized(name: str) -> str:
    return " ".join(name.lower().split())


_PAPER_BY_NAME = {_normalized(name): result for name, result in PAPER_TABLE1.items()}


def _paper_result(training_data: str) -> PaperResult | None:
    """The paper's row for ``training_data``, matched ignoring case and extra spaces."""
    return _PAPER_BY_NAME.get(_normalized(training_data))


def _checked_rows(rows: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
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
    for row in _checked_rows(rows):
        cells = [
            str(row["training_data"]),
            _percent(row["mnist_error_mean"], row["mnist_error_std"]),
            _percent(row["adv_error_mean"], row["adv_error_std"]),
            str(row["nets"]),
            f"{row['train_images']:,}",
        ]
        if reference:
            paper = _paper_result(row["training_data"])
            cells.append(
                "—" if paper is None
                else f"{paper.mnist_error:.3f}% ± {paper.mnist_error_std:.3f}% / {paper.adv_error:.2f}%"
            )
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
    rows = _checked_rows(rows)
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
            else [paper.mnist_error / 100, paper.mnist_error_std / 100, paper.adv_error / 100]
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
    return _checked_rows(rows)


# ----------------------------------------------------------------------------- metadata


def _column(values: list[str], kind: type, name: str, path: Path, first_line: int) -> np.ndarray:
    """Convert one CSV column; on failure name the file, line, column and value."""
    if kind is str:
        return np.array(values, dtype=np.str_)
    if kind is bool:
        lowered = np.char.lower(np.char.strip(np.array(values, dtype=np.str_)))
        good = np.isin(lowered, _TRUE + _FALSE)
        if not good.all():
            bad = int(np.flatnonzero(~good)[0])
            raise ValueError(
                f"{path}:{first_line + bad}: column {name!r}: cannot read {values[bad]!r} as a boolean "
                f"(use one of {_TRUE + _FALSE})"
            )
        return np.isin(lowered, _TRUE)
    dtype = np.int64 if kind is int else np.float64
    try:
        return np.array(values, dtype=dtype)
    except ValueError:
        for i, text in enumerate(values):
            try:
                kind(text)
            except ValueError:
                raise ValueError(
                    f"{path}:{first_line + i}: column {name!r}: cannot read {text!r} as {kind.__name__}"
                ) from None
        raise


def _empty_metadata() -> dict[str, np.ndarray]:
    return {name: np.array([], dtype={str: np.str_, int: np.int64, float: np.float64, bool: bool}[kind])
            for name, kind in METADATA_COLUMNS.items()}


def read_metadata(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> dict[str, np.ndarray]:
    """Read the runner's metadata CSVs into one dict of numpy columns.

    Each CSV has one row per generated image and (at least) the columns of
    :data:`METADATA_COLUMNS`; other columns are ignored. Files are
    concatenated in the order given. Booleans accept true/false, 1/0, yes/no.

    Returns
    -------
    dict
        Column name -> array: ``str`` columns as unicode arrays, ints as int64,
        floats as float64, booleans as bool; all of length N, the total number
        of rows (0 for header-only files or no files).

    Raises
    ------
    ValueError
        Naming the file and the missing column, or the file, line and column
        of a value that cannot be read.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    parts = []
    for path in map(Path, paths):
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise ValueError(f"{path}: empty file, expected a header with the columns {list(METADATA_COLUMNS)}")
            header = [h.strip() for h in header]
            for name in METADATA_COLUMNS:
                if name not in header:
                    raise ValueError(
                        f"{path}: metadata column {name!r} is missing; the header has {header}, "
                        f"expected {list(METADATA_COLUMNS)}"
                    )
            records = []
            for record in reader:
                if len(record) != len(header):
                    raise ValueError(
                        f"{path}:{reader.line_num}: {len(record)} fields, the header has {len(header)}"
                    )
                records.append(record)
        fields = list(zip(*records)) if records else [()] * len(header)
        parts.append({
            name: _column(list(fields[header.index(name)]), kind, name, path, first_line=2)
            for name, kind in METADATA_COLUMNS.items()
        })
    empty = _empty_metadata()
    return {name: np.concatenate([empty[name], *(p[name] for p in parts)]) for name in METADATA_COLUMNS}


def _check_metadata(meta: Mapping[str, np.ndarray], needed: Iterable[str]) -> None:
    """ValueError naming a missing column of ``meta``, or when columns differ in length."""
    lengths = set()
    for name in needed:
        if name not in meta:
            raise ValueError(f"metadata column {name!r} is missing; read the CSVs with read_metadata")
        lengths.add(len(meta[name]))
    if len(lengths) > 1:
        raise ValueError(f"metadata columns have different lengths {sorted(lengths)}")


def _method_order(name: str) -> tuple:
    """FGS, FGV, HC-D-1.., HC-S-1.., then the scaled (hard positive) types; unknown names last."""
    try:
        (method,) = parse_methods(name)
    except ValueError:
        return (1, name)
    return (0, method.scale != 1.0, FAMILIES.index(method.family), method.k, method.scale)


def _expanded(names: Iterable[str]) -> list[str]:
    """Method sets such as ``HC-D-1..9`` as their members; other names as they are."""
    out = []
    for name in names:
        try:
            out.extend(m.name for m in parse_methods(name))
        except ValueError:
            out.append(name)
    return out


def _canonical(name: str) -> str:
    try:
        (method,) = parse_methods(name)
    except ValueError:
        return name
    return method.name


def _groups(meta: Mapping[str, np.ndarray], groups: Groups | None) -> list[tuple[str, np.ndarray]]:
    """(label, row indices) per method type, in display order.

    Without ``groups`` every method in ``meta`` is its own type. With it, each
    label gathers the methods its value names, in the syntax of
    :func:`hotcold.methods.parse_methods`: ``{"HC-D-9": "HC-D-1..9"}`` is the
    paper's HC-D-9 of Fig. 4, the hot/cold images of the 9 closest classes.
    Names that are no method match the ``method`` column verbatim; a label
    that matches nothing gets no rows, which the report notes.
    """
    methods = np.asarray(meta["method"])
    canonical = {name: _canonical(str(name)) for name in np.unique(methods)}
    if groups is None:
        return [(name, np.flatnonzero(methods == name)) for name in sorted(canonical, key=_method_order)]
    out = []
    for label, members in groups.items():
        wanted = {_canonical(member) for member in _expanded([members] if isinstance(members, str) else members)}
        names = [name for name, canon in canonical.items() if canon in wanted]
        out.append((str(label), np.flatnonzero(np.isin(methods, names))))
    return out


@dataclass(frozen=True)
class MethodSummary:
    """Counts and mean ± std of the metrics of one method type (NaN when it has no images).

    ``pass_unconverged`` counts images whose ECC alignment did not converge
    (their PASS uses the unaligned image, Sec. 3). L2 is ``l2_input``, in the
    network's input scale as under Fig. 2; L-inf is in pixel levels.
    """

    method: str
    images: int
    accepted: int
    pass_unconverged: int
    pass_mean: float
    pass_std: float
    l2_mean: float
    l2_std: float
    linf_mean: float
    linf_std: float


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    values = _finite(values)
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std())


def summarize_metadata(meta: Mapping[str, np.ndarray], *, groups: Groups | None = None) -> list[MethodSummary]:
    """One :class:`MethodSummary` per method type (see :func:`plot_pass_distributions` for ``groups``)."""
    _check_metadata(meta, METADATA_COLUMNS)
    out = []
    for label, idx in _groups(meta, groups):
        out.append(MethodSummary(
            label, idx.size, int(np.count_nonzero(meta["accepted"][idx])),
            int(np.count_nonzero(~np.asarray(meta["pass_converged"][idx], dtype=bool))),
            *_mean_std(meta["pass_score"][idx]), *_mean_std(meta["l2_input"][idx]),
            *_mean_std(meta["linf"][idx]),
        ))
    return out


# ----------------------------------------------------------------------------- figures


def _plotted(meta: Mapping[str, np.ndarray], groups: Groups | None, column: str) -> list[tuple[str, np.ndarray]]:
    """Groups that have finite values of ``column``; ValueError when none has."""
    _check_metadata(meta, ("method", column))
    out = [(label, idx) for label, idx in _groups(meta, groups) if _finite(meta[column][idx]).size]
    if not out:
        raise ValueError(f"no images with a finite {column!r} to plot")
    return out


def plot_pass_distributions(meta: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
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
        Columns from :func:`read_metadata` (``method`` and ``pass_score`` are used).
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
    scores = {label: _finite(meta["pass_score"][idx]) for label, idx in plotted}
    low = min(0.5, math.floor(10 * min(s.min() for s in scores.values())) / 10)
    edges = np.linspace(low, 1.0, round((1.0 - low) / 0.01) + 1)
    ncols = min(4, len(plotted))
    nrows = math.ceil(len(plotted) / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.3 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    fgs = next((s for label, s in scores.items() if _canonical(label) == "FGS"), None)
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


def plot_metrics(meta: Mapping[str, np.ndarray], path: str | os.PathLike[str], *,
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
    _check_metadata(meta, ("method", "pass_score", "l2", "linf"))
    plotted = _plotted(meta, groups, "pass_score")
    all_idx = np.concatenate([idx for _, idx in plotted])
    maxima = {}
    for column in ("l2", "linf"):
        values = _finite(meta[column][all_idx])
        maxima[column] = float(values.max()) if values.size and values.max() > 0 else 1.0
    series = {
        "PASS": lambda idx: _finite(meta["pass_score"][idx]),
        "L2": lambda idx: _finite(meta["l2"][idx]) / maxima["l2"],
        "L∞": lambda idx: _finite(meta["linf"][idx]) / maxima["linf"],
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
    :class:`hotcold.generate.GeneratedImage`.
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
        :class:`hotcold.generate.GeneratedImage` objects, in display order.
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


# ----------------------------------------------------------------------------- report


def _cell(mean: float, std: float, digits: int) -> str:
    return "—" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _summary_markdown(summaries: Sequence[MethodSummary]) -> str:
    lines = [
        "| Method | Images | Accepted | ECC not converged | PASS | L2 (input scale) | L∞ (pixels) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        lines.append(
            f"| {s.method} | {s.images:,} | {s.accepted:,} | {s.pass_unconverged:,} | "
            f"{_cell(s.pass_mean, s.pass_std, 3)} | {_cell(s.l2_mean, s.l2_std, 3)} | "
            f"{_cell(s.linf_mean, s.linf_std, 1)} |"
        )
    return "\n".join(lines) + "\n"


def write_report(
    out_dir: str | os.PathLike[str],
    rows: Iterable[Mapping[str, object]],
    metadata_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    examples: ExampleGrid | None = None,
    *,
    groups: Groups | None = None,
    accepted_only: bool = False,
) -> list[Path]:
    """Write Table 1, Fig. 4, Fig. 5 (and Fig. 2) and a ``report.md`` tying them together.

    Files in ``out_dir``: ``table1.md`` and ``table1.csv`` (:func:`write_table1`),
    ``fig4_pass.png`` (:func:`plot_pass_distributions`), ``fig5_metrics.png``
    (:func:`plot_metrics`), ``fig2_examples.png`` (:func:`plot_examples`, when
    ``examples`` is given) and ``report.md``: Table 1, a summary of the
    metadata per method type (:func:`summarize_metadata`) and links to the
    figures. Types without images (or without a PASS score) stay in the
    summary and are named in a note; when no image has a PASS score the
    figures are skipped with a note instead.

    Parameters
    ----------
    out_dir:
        Folder to write into (created when missing).
    rows:
        Table 1 rows, see :func:`table1_markdown`.
    metadata_paths:
        The runner's metadata CSVs (:func:`read_metadata`); may be empty.
    examples:
        Inputs of Fig. 2, or None to skip it.
    groups:
        Method types, see :func:`plot_pass_distributions`.
    accepted_only:
        Summarize and plot only images accepted by Eq. 5 (``accepted``
        column); by default every generated image counts, so the figures show
        the whole PASS range as the paper's do.

    Returns
    -------
    list of Path
        The files written, ``report.md`` last.
    """
    out_dir = Path(out_dir)
    rows = _checked_rows(rows)
    md_path, csv_path = write_table1(rows, out_dir)
    written = [md_path, csv_path]
    meta = read_metadata(metadata_paths)
    if accepted_only:
        if groups is None:
            # Types whose images were all rejected must still show up, with zero images.
            groups = {label: label for label, _ in _groups(meta, None)}
        meta = {name: column[meta["accepted"]] for name, column in meta.items()}
    summaries = summarize_metadata(meta, groups=groups)
    left_out = [s.method for s in summaries if math.isnan(s.pass_mean)]
    selection = "accepted images only (Eq. 5)" if accepted_only else "all images"
    parts = [
        "# hotcold report: adversarial diversity and hard positives (Rozsa et al. 2016)\n",
        "## Table 1: error rates\n",
        table1_markdown(rows),
        f"Errors are mean ± std over the nets. Data: [table1.csv]({csv_path.name}).\n",
        f"## Generated images per method type ({selection})\n",
    ]
    if len(left_out) == len(summaries):
        parts.append("No generated images with a PASS score in the metadata; Fig. 4 and Fig. 5 are skipped.\n")
        if summaries:
            parts.append(_summary_markdown(summaries))
    else:
        parts.append(_summary_markdown(summaries))
        if left_out:
            parts.append(f"No images with a PASS score of {', '.join(left_out)}: left out of the figures.\n")
        figures = (("fig4_pass.png", plot_pass_distributions, "Fig. 4: PASS distributions per method type"),
                   ("fig5_metrics.png", plot_metrics, "Fig. 5: PASS, L2 and L∞ per method type"))
        for name, plot, title in figures:
            written.append(plot(meta, out_dir / name, groups=groups))
            parts.append(f"### {title}\n\n![{title}]({name})\n")
    if examples is not None:
        title = "Fig. 2: generated images and perturbations"
        written.append(plot_examples(examples.original, examples.examples, out_dir / "fig2_examples.png",
                                     label=examples.label))
        parts.append(f"### {title}\n\n![{title}](fig2_examples.png)\n")
    report = out_dir / "report.md"
    atomic_write(report, "\n".join(parts).encode())
    written.append(report)
    return written
