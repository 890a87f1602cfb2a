"""Dataset-scale generation (resumable), the YAML runner and the CLI."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hotcold._guard import OutputDirError
from hotcold.caffe.lmdb_io import read_datum_lmdb
from hotcold.cli import main
from hotcold.pipeline.config import load_experiment
from hotcold.pipeline.generation import generate_to_lmdb
from hotcold.pipeline.runner import run_experiment

REPO = Path(__file__).resolve().parents[2]
METHODS = ["FGS", "FGV", "HC-D-1..3", "HC-S-1"]


def _meta(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def reference_run(lenet, mnist, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen_reference")
    summary = generate_to_lmdb(lenet, mnist.train_images[:60], mnist.train_labels[:60], METHODS, out,
                               net_name="base0", scales=(1.0, 1.05), chunk_size=20)
    return summary


def test_generation_writes_lmdb_and_metadata(reference_run):
    arrays = read_datum_lmdb(reference_run.lmdb)
    meta = _meta(reference_run.metadata)
    assert len(meta) == len(arrays.keys) == reference_run.images > 300
    assert sorted(r["key"] for r in meta) == arrays.keys
    assert {r["method"] for r in meta} >= {"FGS", "HC-D-3", "HC-S-1x1.05"}
    rows = {r["key"]: r for r in meta}
    for key, label in zip(arrays.keys[:50], arrays.labels[:50]):
        assert int(rows[key]["label"]) == label


def test_generation_resumes_after_a_stop_and_after_a_crash_between_writes(lenet, mnist, reference_run, tmp_path):
    args = (lenet, mnist.train_images[:60], mnist.train_labels[:60], METHODS, tmp_path)
    kwargs = dict(net_name="base0", scales=(1.0, 1.05), chunk_size=20)
    first = generate_to_lmdb(*args, stop_after_chunks=1, **kwargs)
    assert first.chunks_run == 1 and not first.metadata.exists()
    # Killed after the LMDB commit of chunk 1 but before its metadata file:
    second = generate_to_lmdb(*args, stop_after_chunks=1, **kwargs)
    (tmp_path / "meta" / "chunk_000001.csv").unlink()
    final = generate_to_lmdb(*args, **kwargs)
    assert (second.chunks_run, final.chunks_run, final.chunks_skipped) == (1, 2, 1)
    assert read_datum_lmdb(final.lmdb).keys == read_datum_lmdb(reference_run.lmdb).keys
    assert _meta(final.metadata) == _meta(reference_run.metadata)


def test_generation_killed_mid_way_resumes_without_duplicate_or_loss(lenet, lenet_weights, mnist, mnist_lmdbs,
                                                                    tmp_path):
    """SIGKILL a real `hotcold generate` process mid-run, then run it again to the end."""
    out = tmp_path / "gen"
    cmd = [sys.executable, "-m", "hotcold.cli", "generate", "--weights", str(lenet_weights),
           "--images", str(mnist_lmdbs["test"]), "--limit", "300", "--chunk-size", "20",
           "--methods", *METHODS, "--scales", "1", "1.1", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "meta" / "chunk_000002.csv").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list((out / "meta").glob("chunk_*.csv")))
    assert 3 <= done_before < 15, "the kill must land mid-run"
    assert not (out / "metadata.csv").exists()
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    meta = _meta(out / "metadata.csv")
    keys = read_datum_lmdb(out / "images.lmdb").keys
    assert len(keys) == len(set(keys)) == len(meta)
    assert sorted(r["key"] for r in meta) == keys
    # Nothing lost: the same images as an uninterrupted run.
    reference = generate_to_lmdb(lenet, mnist.test_images[:300], mnist.test_labels[:300], METHODS,
                                 tmp_path / "reference", net_name="net", scales=(1.0, 1.1), chunk_size=20)
    assert keys == read_datum_lmdb(reference.lmdb).keys


TINY = """
name: tiny
model: lenet
seed: 3
train: {{nets: 1, iterations: 120, snapshot_every: 60}}
generate: {{source_images: 60, scales: [1.0], chunk_size: 30}}
finetune:
  iterations: 40
  orderings: 1
  training_sets:
    - {{name: HC-D-2-1.05, methods: [HC-D-1..2x1.05]}}
evaluate: {{types: [FGS, HC-D-1, HC-S-1], per_type: 20, source_images: 40}}
data: {{source: {source}}}
"""


def test_bad_yaml_is_rejected_naming_the_key(tmp_path, monkeypatch):
    cases = {
        "train: {nets: 1, iteratons: 5}": r"train.iteratons: unknown key",
        "train: {nets: two}": r"train.nets: expected an integer",
        "generate: {scales: [1.0, 0.5]}": r"generate.scales\[1\]: hard-positive scales must be >= 1",
        "finetune: {training_sets: [{name: X, methods: [HC-Q-1]}]}": r"finetune.training_sets\[0\].methods\[0\]: unknown method",
        "evaluate: {types: [HC-D-12]}": r"evaluate.types\[0\]: .*at most 9",
        "data: {source: /no/such/dir}": r"data.source: folder '/no/such/dir' does not exist",
        "seed: 1": r"name: missing required key",
        "fig6: {ranges: [[0.7, 0.6]]}": r"fig6.ranges\[0\]: a range is \[low, high\] with 0 <= low < high <= 1",
        "fig6: {ranges: [[0.5, 0.6, 0.7]]}": r"fig6.ranges\[0\]: a range is \[low, high\]",
        "fig6: {ranges: []}": r"fig6.ranges: give at least one PASS range",
        "fig6: {methods: [FGX]}": r"fig6.methods\[0\]: unknown method",
        "fig6: {ranges: [[0.5, 0.6], [0.5, 0.6]]}": r"fig6.ranges\[1\]: \[0.5, 0.6\] is given twice",
        "fig6: {methods: []}": r"fig6.methods: name at least one method",
        "fig6: {iterations: 0}": r"fig6.iterations: must be >= 1 \(or null",
        "fig6: {range: [[0.5, 0.6]]}": r"fig6.range: unknown key; valid keys here: include_all, iterations",
        "infimnist: {first: 100}": r"infimnist.first: InfiMNIST indices below 70000 are the MNIST images",
        "infimnist: {samples: 0}": r"infimnist.samples: must be >= 1, got 0",
        "infimnist: {data: /no/infimnist}": r"infimnist.data: folder '/no/infimnist' does not exist",
        "goodfellow: {alpha: 1.5}": r"goodfellow.alpha: must be in \[0, 1\] \(Goodfellow et al. use 0.5\)",
        "goodfellow: {eps: 0}": r"goodfellow.eps: a fraction of the pixel range in \(0, 1\]",
        "goodfellow: {eps: big}": r"goodfellow.eps: expected a number",
        "model: bvlc_googlenet\ngoodfellow: {}": r"goodfellow: model 'bvlc_googlenet' subtracts a mean",
    }
    for body, message in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(("" if body.startswith("seed") else "name: bad\n") + body + "\n")
        with pytest.raises(ValueError, match=message):
            load_experiment(path)
    path.write_text("name: bad\ntrain: {iteratons: 5}\n")
    assert main(["run", str(path), "--out", str(tmp_path / "never")]) == 2
    assert not (tmp_path / "never").exists()


def test_tiny_config_runs_end_to_end_and_resumes(mnist, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(source=os.environ["HOTCOLD_MNIST_DIR"]))
    run = run_experiment(config, out=tmp_path / "run", progress=False)
    for unit in ("data", "train/base0", "generate/base0", "generate/base0/shard000",
                 "finetune/HC-D-2-1.05/base0_order0", "advtest/base0", "evaluate/testset", "evaluate/base0", "report"):
        assert (run / "units" / f"{unit}.json").exists(), unit
    table = (run / "report" / "table1.md").read_text()
    assert "basic LeNet" in table and "HC-D-2-1.05" in table
    assert (run / "report" / "fig4_pass.png").stat().st_size > 1000
    capsys.readouterr()
    started = time.time()
    run_experiment(config, out=tmp_path / "run", progress=False)
    assert time.time() - started < 30  # every unit is done
    assert "basic LeNet" in capsys.readouterr().out
    # A changed config is refused naming the unit and the change; --overwrite recomputes what it changes.
    config.write_text(TINY.format(source=os.environ["HOTCOLD_MNIST_DIR"]).replace("source_images: 60", "source_images: 30"))
    with pytest.raises(OutputDirError, match=r"unit 'generate/base0/shard000' .*config.stop: 60 there, 30 now"):
        run_experiment(config, out=tmp_path / "run", progress=False)
    base_weights = (run / "train" / "base0" / "final.caffemodel").read_bytes()
    run_experiment(config, out=tmp_path / "run", progress=False, overwrite=True)
    assert (run / "train" / "base0" / "final.caffemodel").read_bytes() == base_weights  # unchanged unit kept
    sources = {int(r["source_index"]) for r in _meta(run / "generate" / "base0" / "metadata.csv")}
    assert max(sources) < 30


def test_cli_pass_and_doctor(tmp_path, capsys):
    import cv2

    x = np.zeros((28, 28), np.uint8)
    cv2.line(x, (8, 5), (18, 22), 255, 3)
    cv2.imwrite(str(tmp_path / "a.png"), x)
    cv2.imwrite(str(tmp_path / "b.png"), np.roll(x, 1, axis=1))
    assert main(["pass", str(tmp_path / "a.png"), str(tmp_path / "a.png")]) == 0
    assert "PASS = 1.000000" in capsys.readouterr().out
    assert main(["pass", str(tmp_path / "b.png"), str(tmp_path / "a.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pass"] > 0.95 and out["converged"]
    assert out["homography"][0][2] == pytest.approx(1.0, abs=0.05)  # ECC found the 1 px shift
    assert main(["pass", str(tmp_path / "missing.png"), str(tmp_path / "a.png")]) == 2
    done = subprocess.run([str(Path(sys.executable).parent / "hotcold"), "doctor"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backward from blob" in done.stdout and "0 missing" in done.stdout


def test_image_sets_from_folder_idx_and_lmdb(mnist, mnist_lmdbs, tmp_path):
    import cv2

    from hotcold.data.image_sets import load_image_set

    for i in range(6):
        folder = tmp_path / "digits" / str(int(mnist.test_labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"img{i:03d}.png"), mnist.test_images[i])
    images, labels = load_image_set(tmp_path / "digits")
    order = sorted(range(6), key=lambda i: (str(int(mnist.test_labels[i])), f"img{i:03d}.png"))
    np.testing.assert_array_equal(images, mnist.test_images[order])
    np.testing.assert_array_equal(labels, mnist.test_labels[order])
    source = Path(os.environ["HOTCOLD_MNIST_DIR"])
    images, labels = load_image_set(source / "t10k-images-idx3-ubyte.gz", labels=source / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(images, mnist.test_images)
    images, labels = load_image_set(mnist_lmdbs["test"])
    np.testing.assert_array_equal(labels, mnist.test_labels[:2000])
    (tmp_path / "bad" / "seven").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "bad" / "seven" / "a.png"), mnist.test_images[0])
    with pytest.raises(ValueError, match="sub-folder names must be integer labels"):
        load_image_set(tmp_path / "bad")
    with pytest.raises(ValueError, match="pass its label file with --labels"):
        load_image_set(source / "t10k-images-idx3-ubyte.gz")


def test_adversarial_test_set_is_equal_per_type_even_over_nets_and_skips_empty_types(tmp_path):
    from hotcold.caffe.lmdb_io import write_datum_lmdb
    from hotcold.core.records import GeneratedBatch
    from hotcold.data.records import records_csv
    from hotcold.pipeline.evaluation import adversarial_test_set

    counts = {"base0": {"FGS": 5, "HC-D-1": 3}, "base1": {"FGS": 4, "HC-D-1": 1}}
    summaries = []
    for n, (net, per_method) in enumerate(counts.items()):
        keys, methods, images, labels = [], [], [], []
        for method, count in per_method.items():
            for i in range(count):
                key = f"{net}_{i:07d}_{method}"
                label = (3 * n + i) % 10
                keys.append(key)
                images.append(np.full((28, 28), 10 * n + i, np.uint8))
                labels.append(label)
                methods.append(method)
        n_rows = len(keys)
        ones = np.ones(n_rows)
        records = GeneratedBatch(key=keys, method=methods, source_index=np.arange(n_rows), net=[net] * n_rows,
                                 label=labels, predicted=(np.array(labels) + 1) % 10, hot_class=-ones, eps=ones,
                                 scale=ones, pass_score=0.9 * ones, pass_converged=ones, l2=ones, l2_per_pixel=ones,
                                 linf=ones, l2_input=ones, forward_passes=5 * ones, accepted=ones)
        out = tmp_path / net
        write_datum_lmdb(out / "images.lmdb", np.stack(images), labels, keys=keys)
        (out / "metadata.csv").write_text(records_csv(records))
        summaries.append((out / "images.lmdb", out / "metadata.csv"))
    test_set = adversarial_test_set(summaries, ["FGS", "HC-D-1", "HC-S-1"], per_type=10, seed=0)
    methods = test_set["method"].tolist()
    assert methods.count("FGS") == methods.count("HC-D-1") == 4  # the scarcer type sets the number
    assert "HC-S-1" not in methods  # no image of that type: left out, not an empty test set
    fgs = test_set["images"][test_set["method"] == "FGS"][:, 0, 0]
    assert sorted(v // 10 for v in fgs) == [0, 0, 1, 1]  # even over the two nets
    assert len(test_set["labels"]) == len(test_set["images"]) == 8
