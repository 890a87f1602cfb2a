"""Per-method-type summaries of generated-image records: counts and mean PASS / L2 / L-inf (Figs. 4, 5)."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from hotcold.core.methods import FAMILIES, parse_methods
from hotcold.core.records import FIELD_NAMES, GeneratedBatch

Records = GeneratedBatch | Mapping[str, np.ndarray]
"""Generated-image records: a batch, or a mapping of its column names to arrays."""

Groups = Mapping[str, str | Sequence[str]]
"""Method types: label -> method names or sets, e.g. ``{"HC-D-9": "HC-D-1..9"}``."""



def check_columns(meta: Records, needed: Iterable[str]) -> None:
    """ValueError naming a missing column of ``meta``, or when columns differ in length."""
    lengths = set()
    for name in needed:
        if name not in meta:
            raise ValueError(f"metadata column {name!r} is missing; read the CSVs with hotcold.data.records.read_records")
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


def canonical_method(name: str) -> str:
    """The canonical spelling of a method name (``HC-D-1x1.050`` -> ``HC-D-1x1.05``); other names as they are."""
    try:
        (method,) = parse_methods(name)
    except ValueError:
        return name
    return method.name


def method_groups(meta: Records, groups: Groups | None) -> list[tuple[str, np.ndarray]]:
    """(label, row indices) per method type, in display order.

    Without ``groups`` every method in ``meta`` is its own type. With it, each
    label gathers the methods its value names, in the syntax of
    :func:`hotcold.core.methods.parse_methods`: ``{"HC-D-9": "HC-D-1..9"}`` is the
    paper's HC-D-9 of Fig. 4, the hot/cold images of the 9 closest classes.
    Names that are no method match the ``method`` column verbatim; a label
    that matches nothing gets no rows, which the report notes.
    """
    methods = np.asarray(meta["method"])
    canonical = {name: canonical_method(str(name)) for name in np.unique(methods)}
    if groups is None:
        return [(name, np.flatnonzero(methods == name)) for name in sorted(canonical, key=_method_order)]
    out = []
    for label, members in groups.items():
        wanted = {canonical_method(member) for member in _expanded([members] if isinstance(members, str) else members)}
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


def finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _mean_std(values: np.ndarray) -> tuple[float, float]:
    values = finite(values)
    if values.size == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std())


def summarize_metadata(meta: Records, *, groups: Groups | None = None) -> list[MethodSummary]:
    """One :class:`MethodSummary` per method type (see :func:`plot_pass_distributions` for ``groups``)."""
    check_columns(meta, FIELD_NAMES)
    out = []
    for label, idx in method_groups(meta, groups):
        out.append(MethodSummary(
            label, idx.size, int(np.count_nonzero(meta["accepted"][idx])),
            int(np.count_nonzero(~np.asarray(meta["pass_converged"][idx], dtype=bool))),
            *_mean_std(meta["pass_score"][idx]), *_mean_std(meta["l2_input"][idx]),
            *_mean_std(meta["linf"][idx]),
        ))
    return out



def _cell(mean: float, std: float, digits: int) -> str:
    return "—" if math.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(summaries: Sequence[MethodSummary]) -> str:
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
