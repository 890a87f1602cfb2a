"""Tests of hotcold.report: Table 1, summaries, Fig. 2, 4, 5 and report.md."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from hotcold.core.records import FIELD_NAMES
from hotcold.data.records import read_records
from hotcold.report import (
    PAPER_TABLE1,
    Example,
    ExampleGrid,
    plot_examples,
    plot_metrics,
    plot_pass_distributions,
    read_table1,
    summarize_metadata,
    table1_markdown,
    write_report,
    write_table1,
)
from tests.fake_records import write_metadata

METHODS = ("HC-D-2", "FGV", "HC-D-1x1.05", "FGS", "HC-S-1", "HC-D-1", "HC-D-1x1.1")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Paper-like rows; "basic LeNet" and "FGS" match the paper's rows, "HC-D-1..2" matches none.
ROWS = [
    {"training_data": "basic LeNet", "nets": 3, "mnist_error_mean": 0.00937, "mnist_error_std": 0.0011,
     "adv_error_mean": 0.6421, "adv_error_std": 0.0123, "train_images": 0},
    {"training_data": "HC-D-9-1.05", "nets": 9, "mnist_error_mean": 0.00673, "mnist_error_std": 0.00035,
     "adv_error_mean": 0.1485, "adv_error_std": 0.004, "train_images": 340000},
    {"training_data": "FGS", "nets": 9, "mnist_error_mean": 0.0079, "mnist_error_std": 0.00122,
     "adv_error_mean": 0.3106, "adv_error_std": 0.01, "train_images": 37663},
    {"training_data": "HC-D-1..2", "nets": 1, "mnist_error_mean": 0.0071234, "mnist_error_std": 0.0,
     "adv_error_mean": 0.2, "adv_error_std": 0.0, "train_images": 1234},
]

GOLDEN_TABLE = """\
| Training data | MNIST test error (mean ± std) | Adversarial test error (mean ± std) | Nets | Added images | Paper, Table 1 (MNIST / adversarial) |
|---|---:|---:|---:|---:|---:|
| HC-D-9-1.05 | 0.673% ± 0.035% | 14.850% ± 0.400% | 9 | 340,000 | 0.673% ± 0.035% / 14.85% |
| HC-D-1..2 | 0.712% ± 0.000% | 20.000% ± 0.000% | 1 | 1,234 | — |
| FGS | 0.790% ± 0.122% | 31.060% ± 1.000% | 9 | 37,663 | 0.790% ± 0.122% / 31.06% |
| basic LeNet | 0.937% ± 0.110% | 64.210% ± 1.230% | 3 | 0 | 0.937% ± 0.110% / 64.21% |
"""


def assert_png(path: Path, min_side: int = 200) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) >= min_side
    assert pixels[..., :3].std() > 0.05, "the figure is blank"


@pytest.fixture(scope="module")
def metadata_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    counts = {m: 40 + 10 * i for i, m in enumerate(METHODS)}
    return write_metadata(tmp_path_factory.mktemp("meta") / "meta.csv", counts)


def test_table1_golden() -> None:
    # Golden string: paper numbers from Rozsa et al. 2016, Table 1; rows sorted by MNIST error.
    assert table1_markdown(ROWS) == GOLDEN_TABLE


def test_table1_without_reference_drops_the_column() -> None:
    text = table1_markdown(ROWS, reference=False)
    assert "Paper" not in text and text.splitlines()[2].count("|") == 6


def test_paper_table_values() -> None:
    assert PAPER_TABLE1["HC-D-9-1.05"].adv_error == 14.85
    assert PAPER_TABLE1["Basic LeNet"].mnist_error == 0.937
    assert list(PAPER_TABLE1) == sorted(PAPER_TABLE1, key=lambda k: PAPER_TABLE1[k].mnist_error)


def test_table1_csv_round_trip(tmp_path: Path) -> None:
    md_path, csv_path = write_table1(ROWS, tmp_path)
    assert md_path.read_text().startswith(GOLDEN_TABLE)
    expected = sorted(ROWS, key=lambda r: r["mnist_error_mean"])
    assert read_table1(csv_path) == expected
    with open(csv_path, newline="") as f:
        records = list(csv.DictReader(f))
    assert float(records[0]["paper_adv_error_mean"]) == pytest.approx(0.1485)
    assert records[1]["paper_mnist_error_mean"] == ""
    assert not list(tmp_path.glob(".*.tmp")), "temporary files left behind"


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"adv_error_std": -0.01}, "adv_error_std must be a fraction"),
        ({"mnist_error_mean": 93.0}, "mnist_error_mean must be a fraction"),
        ({"nets": 0}, "nets must be an integer >= 1"),
        ({"train_images": 1.5}, "train_images must be an integer"),
        ({"extra": 1}, r"unknown keys \['extra'\]"),
    ],
)
def test_table1_rejects_bad_rows(change: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        table1_markdown([{**ROWS[0], **change}])


def test_table1_missing_key() -> None:
    row = {k: v for k, v in ROWS[0].items() if k != "adv_error_std"}
    with pytest.raises(ValueError, match=r"missing keys \['adv_error_std'\]"):
        table1_markdown([row])


def test_summary_order_and_values(metadata_csv: Path) -> None:
    meta = read_records(metadata_csv)
    summaries = summarize_metadata(meta)
    assert [s.method for s in summaries] == [
        "FGS", "FGV", "HC-D-1", "HC-D-2", "HC-S-1", "HC-D-1x1.05", "HC-D-1x1.1"]
    fgs = summaries[0]
    mask = meta["method"] == "FGS"
    assert fgs.images == mask.sum() == 70
    assert fgs.accepted == meta["accepted"][mask].sum()
    assert fgs.pass_mean == pytest.approx(meta["pass_score"][mask].mean())
    assert fgs.linf_std == pytest.approx(meta["linf"][mask].std())


def test_summary_groups_expand_sets(metadata_csv: Path) -> None:
    meta = read_records(metadata_csv)
    groups = {"HC-D-2": "HC-D-1..2", "HC-D-2-1.05": "HC-D-1..2x1.05", "HC-S-9": "HC-S-1..9"}
    by_label = {s.method: s for s in summarize_metadata(meta, groups=groups)}
    assert by_label["HC-D-2"].images == np.isin(meta["method"], ["HC-D-1", "HC-D-2"]).sum()
    assert by_label["HC-D-2-1.05"].images == (meta["method"] == "HC-D-1x1.05").sum()
    assert by_label["HC-S-9"].images == (meta["method"] == "HC-S-1").sum()


@pytest.mark.parametrize("plot", [plot_pass_distributions, plot_metrics])
def test_metadata_figures(plot, metadata_csv: Path, tmp_path: Path) -> None:
    path = plot(read_records(metadata_csv), tmp_path / "fig.png")
    assert_png(path)


@pytest.mark.parametrize("plot", [plot_pass_distributions, plot_metrics])
def test_metadata_figures_skip_empty_types(plot, metadata_csv: Path, tmp_path: Path) -> None:
    groups = {"FGS": "FGS", "HC-S-2": "HC-S-2", "FGV": "FGV"}
    assert_png(plot(read_records(metadata_csv), tmp_path / "fig.png", groups=groups))


@pytest.mark.parametrize("plot", [plot_pass_distributions, plot_metrics])
def test_metadata_figures_need_images(plot, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no images"):
        plot(read_records([]), tmp_path / "fig.png")


def make_examples(rng: np.random.Generator) -> tuple[np.ndarray, list[Example]]:
    original = np.zeros((28, 28), np.uint8)
    original[6:22, 12:16] = 255
    examples = []
    for method in ("FGS", "FGV", "HC-D-1", "HC-D-2"):
        eta = rng.integers(-30, 31, size=original.shape)
        adv = np.clip(original.astype(int) + eta, 0, 255).astype(np.uint8)
        examples.append(Example(method, adv, 0.979, 0.196, float(np.abs(eta).max()), 4))
    return original, examples


@pytest.mark.parametrize("channel_axis", [False, True])
def test_plot_examples(channel_axis: bool, tmp_path: Path) -> None:
    original, examples = make_examples(np.random.default_rng(3))
    if channel_axis:  # H x W x 1, as single-channel images sometimes come
        original = original[..., None]
        examples = [Example(e.method, e.image[..., None], e.pass_score, e.l2_input, e.linf, e.predicted)
                    for e in examples]
    assert_png(plot_examples(original, examples, tmp_path / "fig2.png", label=9))


def test_plot_examples_rejects_shape_mismatch(tmp_path: Path) -> None:
    original, examples = make_examples(np.random.default_rng(3))
    examples[1] = Example("FGV", np.zeros((27, 28), np.uint8), 1.0, 0.0, 0.0, 9)
    with pytest.raises(ValueError, match=r"example 'FGV' has shape \(27, 28\), the original has \(28, 28\)"):
        plot_examples(original, examples, tmp_path / "fig2.png")


def test_write_report(metadata_csv: Path, tmp_path: Path) -> None:
    original, examples = make_examples(np.random.default_rng(4))
    written = write_report(tmp_path / "out", ROWS, [metadata_csv], ExampleGrid(original, examples, 9),
                           groups={m: m for m in (*METHODS, "HC-S-5")})
    names = [p.name for p in written]
    assert names == ["table1.md", "table1.csv", "fig4_pass.png", "fig5_metrics.png", "fig2_examples.png",
                     "report.md"]
    for path in written[2:5]:
        assert_png(path)
    report = (tmp_path / "out" / "report.md").read_text()
    assert GOLDEN_TABLE in report
    for link in ("(fig4_pass.png)", "(fig5_metrics.png)", "(fig2_examples.png)", "(table1.csv)"):
        assert link in report
    assert "| HC-S-5 | 0 | 0 | 0 | — | — | — |" in report
    assert "No images with a PASS score of HC-S-5: left out" in report
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_write_report_accepted_only_keeps_rejected_types(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "meta.csv", {"FGS": 30, "FGV": 30})
    text = path.read_text().replace(",FGV,", ",HC-D-3,", 1)  # one HC-D-3 image ...
    lines = text.splitlines()
    hc = next(i for i, line in enumerate(lines) if ",HC-D-3," in line)
    lines[hc] = lines[hc].rsplit(",", 1)[0] + ",False"  # ... and it was rejected
    path.write_text("\n".join(lines) + "\n")
    write_report(tmp_path / "out", ROWS, path, accepted_only=True)
    report = (tmp_path / "out" / "report.md").read_text()
    assert "accepted images only (Eq. 5)" in report
    assert "| HC-D-3 | 0 | 0 | 0 | — | — | — |" in report


def test_write_report_empty_metadata(tmp_path: Path) -> None:
    empty = write_metadata(tmp_path / "empty.csv", {})
    for sources in ([empty], []):
        out = tmp_path / f"out{len(sources)}"
        written = write_report(out, [], sources)
        assert [p.name for p in written] == ["table1.md", "table1.csv", "report.md"]
        report = (out / "report.md").read_text()
        assert "No generated images with a PASS score" in report
        assert "fig4_pass.png" not in report
        assert read_table1(out / "table1.csv") == []


def test_write_report_without_pass_scores(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "meta.csv", {"FGS": 3, "FGV": 2})
    lines = path.read_text().splitlines()
    column = list(FIELD_NAMES).index("pass_score")
    for i in range(1, len(lines)):
        fields = lines[i].split(",")
        fields[column] = "nan"
        lines[i] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    written = write_report(tmp_path / "out", ROWS, path)
    assert [p.name for p in written] == ["table1.md", "table1.csv", "report.md"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "No generated images with a PASS score" in report
    assert "| FGS | 3 |" in report


def test_plot_metrics_without_distances(metadata_csv: Path, tmp_path: Path) -> None:
    meta = read_records(metadata_csv)
    meta = dataclasses.replace(meta, l2=np.full_like(meta["l2"], np.nan))
    assert_png(plot_metrics(meta, tmp_path / "fig5.png"))


def test_write_report_missing_column(tmp_path: Path) -> None:
    path = write_metadata(tmp_path / "bad.csv", {"FGS": 2}, drop="pass_score")
    with pytest.raises(ValueError, match="'pass_score' is missing"):
        write_report(tmp_path / "out", ROWS, [path])


# ----------------------------------------------------------------------------- the rows and figure of issue 12

def test_table1_sets_the_goodfellow_and_infimnist_rows_beside_the_papers() -> None:
    rows = [{"training_data": "Goodfellow et al.", "nets": 9, "mnist_error_mean": 0.008, "mnist_error_std": 0.001,
             "adv_error_mean": 0.2, "adv_error_std": 0.01, "train_images": 0},
            {"training_data": "InfiMNIST-style (20K)", "nets": 3, "mnist_error_mean": 0.009, "mnist_error_std": 0.001,
             "adv_error_mean": 0.5, "adv_error_std": 0.01, "train_images": 20000}]
    text = table1_markdown(rows)
    assert "| Goodfellow et al. | 0.800% ± 0.100% | 20.000% ± 1.000% | 9 | 0 | 0.782% / 17.90% |" in text
    assert "| InfiMNIST-style (20K) |" in text and "| 20,000 | 0.697% ± 0.021% / 48.35% |" in text
    rows[1]["training_data"] = "InfiMNIST (1M)"  # made from the original data files
    assert "| InfiMNIST (1M) |" in table1_markdown(rows) and "0.697% ± 0.021% / 48.35%" in table1_markdown(rows)
    assert PAPER_TABLE1["Goodfellow et al."].mnist_error_std is None


def test_goodfellow_paper_row_has_an_empty_std_in_the_csv(tmp_path: Path) -> None:
    rows = [{"training_data": "Goodfellow et al.", "nets": 1, "mnist_error_mean": 0.008, "mnist_error_std": 0.0,
             "adv_error_mean": 0.2, "adv_error_std": 0.0, "train_images": 0}]
    _, csv_path = write_table1(rows, tmp_path)
    (line,) = list(csv.DictReader(csv_path.open()))
    assert (line["paper_mnist_error_mean"], line["paper_mnist_error_std"]) == ("0.00782", "")


FIG6_ROWS = [{"pass_range": label, "nets": 3, "mnist_error_mean": m, "mnist_error_std": 0.0005,
              "adv_error_mean": a, "adv_error_std": 0.01, "train_images": 1200}
             for label, m, a in (("0.5-0.6", 0.007, 0.3), ("0.8-0.9", 0.0065, 0.2), ("0.9-1.0", 0.008, 0.45),
                                 ("all", 0.0068, 0.25))]


def test_fig6_markdown_states_the_papers_claims_and_whether_the_run_shows_them() -> None:
    from hotcold.report.fig6 import fig6_markdown

    text = fig6_markdown(FIG6_ROWS, images_per_range=1200)
    assert "Fine-tuned on 1,200 generated images per PASS range" in text
    assert "| [0.9, 1.0] | 0.800% ± 0.050% | 45.00% ± 1.00% | 3 |" in text
    assert "| [0.5, 0.6) |" in text and "| all |" in text
    assert "highest MNIST test error | yes ([0.9, 1.0]) |" in text
    flipped = [dict(r, adv_error_mean=0.1) if r["pass_range"] == "0.9-1.0" else r for r in FIG6_ROWS]
    assert "highest adversarial test error | no |" in fig6_markdown(flipped, images_per_range=1200)


def test_write_report_adds_fig6_and_the_infimnist_share(metadata_csv: Path, tmp_path: Path) -> None:
    shares = [{"base": f"base{i}", "samples": 1000, "misclassified": 20 + i, "share": (20 + i) / 1000}
              for i in range(3)]
    paths = write_report(tmp_path, ROWS, [metadata_csv], fig6=FIG6_ROWS, fig6_images=1200, infimnist_share=shares)
    names = {p.name for p in paths}
    assert {"fig6.csv", "fig6_pass_ranges.png", "infimnist_share.csv"} <= names
    assert (tmp_path / "fig6_pass_ranges.png").read_bytes().startswith(PNG_MAGIC)
    report = (tmp_path / "report.md").read_text()
    assert "| 1,000 | 3 | 2.100% ± 0.082% | 2.199% ± 0.132% |" in report
    assert "## Fig. 6: training by PASS range" in report
    lines = (tmp_path / "fig6.csv").read_text().splitlines()
    assert lines[0] == "pass_range,nets,mnist_error_mean,mnist_error_std,adv_error_mean,adv_error_std,train_images"
    assert lines[3] == "0.9-1.0,3,0.008,0.0005,0.45,0.01,1200"


def test_fig6_and_share_reject_malformed_rows(tmp_path: Path) -> None:
    from hotcold.report.fig6 import plot_fig6
    from hotcold.report.infimnist import share_markdown

    with pytest.raises(ValueError, match="Fig. 6 needs at least one PASS range"):
        plot_fig6([], tmp_path / "f.png", images_per_range=1)
    with pytest.raises(ValueError, match=r"Fig. 6 row 0: keys .* exactly the keys"):
        plot_fig6([{"pass_range": "all"}], tmp_path / "f.png", images_per_range=1)
    with pytest.raises(ValueError, match="at least one base net"):
        share_markdown([])
