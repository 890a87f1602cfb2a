"""A run's report folder: Table 1, the summary per method type and the figures, tied together in ``report.md``."""
from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from hotcold._io import atomic_write
from hotcold.data.records import read_records
from hotcold.report.fig6 import fig6_markdown, plot_fig6, write_fig6_csv
from hotcold.report.figures import ExampleGrid, plot_examples, plot_metrics, plot_pass_distributions
from hotcold.report.infimnist import share_markdown, write_share_csv
from hotcold.report.summary import Groups, method_groups, summarize_metadata, summary_markdown
from hotcold.report.table1 import checked_rows, table1_markdown, write_table1


def write_report(
    out_dir: str | os.PathLike[str],
    rows: Iterable[Mapping[str, object]],
    metadata_paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    examples: ExampleGrid | None = None,
    *,
    groups: Groups | None = None,
    accepted_only: bool = False,
    fig6: Sequence[Mapping[str, object]] | None = None,
    fig6_images: int = 0,
    infimnist_share: Sequence[Mapping[str, object]] | None = None,
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
        The runner's metadata CSVs (:func:`hotcold.data.records.read_records`); may be empty.
    examples:
        Inputs of Fig. 2, or None to skip it.
    groups:
        Method types, see :func:`plot_pass_distributions`.
    accepted_only:
        Summarize and plot only images accepted by Eq. 5 (``accepted``
        column); by default every generated image counts, so the figures show
        the whole PASS range as the paper's do.
    fig6, fig6_images:
        Fig. 6's points (:data:`hotcold.report.fig6.FIG6_KEYS`) and the training
        images per range: ``fig6.png``, ``fig6.csv`` and a section with the
        paper's claims beside them. None: no Fig. 6.
    infimnist_share:
        Per base net, the share of adversarials among InfiMNIST samples
        (:data:`hotcold.report.infimnist.SHARE_KEYS`): ``infimnist_share.csv``
        and a section beside the paper's 2.199 ± 0.132%. None: none.

    Returns
    -------
    list of Path
        The files written, ``report.md`` last.
    """
    out_dir = Path(out_dir)
    rows = checked_rows(rows)
    md_path, csv_path = write_table1(rows, out_dir)
    written = [md_path, csv_path]
    meta = read_records(metadata_paths)
    if accepted_only:
        if groups is None:
            # Types whose images were all rejected must still show up, with zero images.
            groups = {label: label for label, _ in method_groups(meta, None)}
        meta = meta.select(meta.accepted)
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
            parts.append(summary_markdown(summaries))
    else:
        parts.append(summary_markdown(summaries))
        if left_out:
            parts.append(f"No images with a PASS score of {', '.join(left_out)}: left out of the figures.\n")
        figures = (("fig4_pass.png", plot_pass_distributions, "Fig. 4: PASS distributions per method type"),
                   ("fig5_metrics.png", plot_metrics, "Fig. 5: PASS, L2 and L∞ per method type"))
        for name, plot, title in figures:
            written.append(plot(meta, out_dir / name, groups=groups))
            parts.append(f"### {title}\n\n![{title}]({name})\n")
    if infimnist_share:
        written.append(write_share_csv(infimnist_share, out_dir / "infimnist_share.csv"))
        parts += ["## Adversarials among InfiMNIST samples (Sec. 2)\n", share_markdown(infimnist_share),
                  "Share: the fraction of the samples a base net does not classify as their label. "
                  "Data: [infimnist_share.csv](infimnist_share.csv).\n"]
    if fig6:
        written.append(write_fig6_csv(fig6, out_dir / "fig6.csv"))
        written.append(plot_fig6(fig6, out_dir / "fig6_pass_ranges.png", images_per_range=fig6_images))
        title = "Fig. 6: training by PASS range"
        parts += [f"## {title}\n", fig6_markdown(fig6, images_per_range=fig6_images),
                  f"Data: [fig6.csv](fig6.csv).\n\n![{title}](fig6_pass_ranges.png)\n"]
    if examples is not None:
        title = "Fig. 2: generated images and perturbations"
        written.append(plot_examples(examples.original, examples.examples, out_dir / "fig2_examples.png",
                                     label=examples.label))
        parts.append(f"### {title}\n\n![{title}](fig2_examples.png)\n")
    report = out_dir / "report.md"
    atomic_write(report, "\n".join(parts).encode())
    written.append(report)
    return written
