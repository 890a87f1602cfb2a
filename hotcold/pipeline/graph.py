"""The MNIST experiment's whole graph: Table 1's units plus, when configured, Fig. 6, the InfiMNIST row and
share, and the Goodfellow row (Sec. 2, 5.2), all reported by Table 1's ``report`` unit."""
from __future__ import annotations

import dataclasses

from hotcold.pipeline.config import Experiment
from hotcold.pipeline.fig6 import fig6_units
from hotcold.pipeline.goodfellow import goodfellow_units
from hotcold.pipeline.infimnist import infimnist_units
from hotcold.pipeline.table1 import build_units as table1_units
from hotcold.pipeline.units import Unit


def build_units(exp: Experiment, *, source: str, progress: bool) -> list[Unit]:
    """Every unit of ``exp``; ``source`` and ``progress`` as in :func:`hotcold.pipeline.table1.build_units`."""
    units = table1_units(exp, source=source, progress=progress)
    *units, report = units
    if report.key != "report":
        raise RuntimeError(f"Table 1's graph must end with its report unit, ends with {report.key!r}")
    local = {"source": source, "device": exp.device, "progress": progress}
    base = [f"base{i}" for i in range(exp.train.nets)]
    reported: list[str] = []
    for section, make in ((exp.fig6, fig6_units), (exp.infimnist, infimnist_units),
                          (exp.goodfellow, goodfellow_units)):
        if section is not None:
            extra, keys = make(exp, base, local)
            units += extra
            reported += keys
    if exp.fig6 is not None:
        reported.append("fig6/split")
    return units + [dataclasses.replace(report, needs=report.needs + tuple(reported))]
