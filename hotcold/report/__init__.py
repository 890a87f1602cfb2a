"""Tables, summaries and figures of a hotcold run, shaped like the paper's (Sec. 5).

* :mod:`~hotcold.report.table1`: Table 1 beside the paper's numbers.
* :mod:`~hotcold.report.summary`: images, acceptance and mean PASS / L2 / L-inf per method type.
* :mod:`~hotcold.report.figures`: Fig. 2 (examples), Fig. 4 (PASS), Fig. 5 (metrics).
* :mod:`~hotcold.report.document`: :func:`write_report`, all of it in one folder with a ``report.md``.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Iterable

from hotcold.core.records import GeneratedBatch
from hotcold.data.records import read_records
from hotcold.report.document import write_report
from hotcold.report.figures import Example, ExampleGrid, plot_examples, plot_metrics, plot_pass_distributions
from hotcold.report.summary import MethodSummary, summarize_metadata
from hotcold.report.table1 import PAPER_TABLE1, TABLE1_KEYS, PaperResult, read_table1, table1_markdown, write_table1

__all__ = [
    "PAPER_TABLE1", "PaperResult", "TABLE1_KEYS", "MethodSummary", "Example", "ExampleGrid", "table1_markdown",
    "write_table1", "read_table1", "summarize_metadata", "plot_pass_distributions", "plot_metrics",
    "plot_examples", "write_report",
]


def read_metadata(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> GeneratedBatch:
    """Deprecated name of :func:`hotcold.data.records.read_records`."""
    warnings.warn("hotcold.report.read_metadata is now hotcold.data.records.read_records; the old name will be "
                  "removed in hotcold 0.3", DeprecationWarning, stacklevel=2)
    return read_records(paths)
