"""Hostile input across the CLI, the Python API and the YAML runner: never an abort, never silent corruption.

Every case asserts the exit code or the exception type, that the message names
the problem, and that nothing a later run would trust was left behind.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from hotcold._guard import RECORD_NAME, DirectoryLock, OutputDirError, check_plain_name, claim
from hotcold.caffe.lmdb_io import read_datum_lmdb, write_datum_lmdb
from hotcold.cli import main
from hotcold.pipeline.config import load_experiment

REPO = Path(__file__).resolve().parents[1]


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process: (exit status, stderr). argparse errors exit with 2 too."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def trusted_output(out: Path) -> list[str]:
    """What a later run would take as results: the record of what made the directory, or metadata."""
    return [p.name for p in (out / RECORD_NAME, out / "metadata.csv", out / "images.lmdb") if p.exists()]


# ---------------------------------------------------------------- CLI: arguments checked by argparse

GENERATE = ["generate", "--weights", "w.caffemodel", "--images", "imgs", "--out", "OUT"]


@pytest.mark.parametrize("extra, message", [
    (["--scales", "1", "nan"], "argument --scales: expected a finite number, got 'nan'"),
    (["--scales", "inf"], "argument --scales: expected a finite number, got 'inf'"),
    (["--scales", "0.5"], "argument --scales: must be >= 1, got 0.5"),
    (["--scales", "big"], "argument --scales: expected a number, got 'big'"),
    (["--tau", "1.5"], "argument --tau: must be >= 0 and <= 1, got 1.5"),
    (["--tau", "-0.1"], "argument --tau: must be >= 0 and <= 1"),
    (["--tau", "nan"], "argument --tau: expected a finite number"),
    (["--max-eps", "0"], "argument --max-eps: must be > 0, got 0"),
    (["--max-eps=-inf"], "argument --max-eps: expected a finite number"),
    (["--limit", "0"], "argument --limit: must be >= 1, got 0"),
    (["--limit", "-5"], "argument --limit: must be >= 1, got -5"),
    (["--limit", "1.7"], "argument --limit: expected a whole number >= 1, got '1.7'"),
    (["--chunk-size", "0"], "argument --chunk-size: must be >= 1, got 0"),
    (["--net-name", "../x"], "argument --net-name: the name must be a plain name"),
    (["--net-name", "a/b"], "argument --net-name: the name must be a plain name"),
    (["--device", "tpu"], "argument --device: must be cpu, gpu or gpu:N"),
    (["--device", "gpu:x"], "argument --device: must be cpu, gpu or gpu:N"),
    (["--gpu", "x"], "argument --gpu: expected a GPU number such as 0, got 'x'"),
    (["--gpu", "-1"], "argument --gpu: expected a GPU number such as 0, got '-1'"),
    (["--gpu", "0", "--device", "cpu"], "argument --device: not allowed with argument --gpu"),
    (["--device", "gpu:1", "--gpu", "0"], "argument --gpu: not allowed with argument --device"),
])
def test_cli_generate_arguments(extra, message, capsys, tmp_path):
    out = tmp_path / "out"
    code, err = cli([a if a != "OUT" else out for a in GENERATE] + extra, capsys)
    assert code == 2 and message in err
    assert not out.exists()


# ---------------------------------------------------------------- CLI: commands with real files

@pytest.fixture(scope="module")
def files(tmp_path_factory, mnist, lenet_weights) -> dict[str, Path]:
    """Good and broken inputs: an LMDB of digits, images (truncated, 16-bit, colour), a prototxt."""
    root = tmp_path_factory.mktemp("hostile")
    digits = write_datum_lmdb(root / "digits.lmdb", mnist.test_images[:40], mnist.test_labels[:40])
    png = root / "digit.png"
    cv2.imwrite(str(png), mnist.test_images[0])
    truncated = root / "truncated.png"
    truncated.write_bytes(png.read_bytes()[:60])
    jpeg = root / "digit.jpg"
    cv2.imwrite(str(jpeg), mnist.test_images[0])
    cut_jpeg = root / "cut.jpg"
    cut_jpeg.write_bytes(jpeg.read_bytes()[:-40])
    deep = root / "deep.png"
    cv2.imwrite(str(deep), mnist.test_images[0].astype(np.uint16) * 257)
    small = root / "small.png"
    cv2.imwrite(str(small), mnist.test_images[0][:20, :20])
    text = root / "notes.png"
    text.write_text("not an image")
    floaty = root / "float.tiff"
    cv2.imwrite(str(floaty), mnist.test_images[0].astype(np.float32) / 255)
    damaged = root / "damaged.lmdb"
    shutil.copytree(digits, damaged)
    data = (damaged / "data.mdb").read_bytes()
    (damaged / "data.mdb").write_bytes(data[:len(data) // 2])
    foreign = root / "foreign.lmdb"
    foreign.mkdir()
    (foreign / "data.mdb").write_bytes(os.urandom(20000))
    from hotcold.caffe.zoo import package_data

    return {"digits": digits, "png": png, "truncated": truncated, "cut_jpeg": cut_jpeg, "deep": deep,
            "small": small, "text": text, "float": floaty, "damaged": damaged, "foreign": foreign,
            "weights": lenet_weights, "prototxt": package_data("prototxt") / "lenet_deploy.prototxt"}


def _generate_args(files, out, **change) -> list:
    args = {"--weights": files["weights"], "--images": files["digits"], "--methods": "FGS", "--out": out,
            "--chunk-size": "20"}
    args.update(change)
    return ["generate", "--quiet"] + [x for k, v in args.items() if v is not None for x in (k, v)]


@pytest.mark.parametrize("change, message", [
    ({"--weights": "missing.caffemodel"}, "weights 'missing.caffemodel' do not exist"),
    ({"--weights": "prototxt"}, "not a binary Caffe NetParameter"),
    ({"--deploy": "weights"}, "is a binary file, not a text NetParameter (a .caffemodel or .binaryproto?)"),
    ({"--images": "missing_set"}, "image set 'missing_set' does not exist"),
    ({"--images": "damaged"}, "data.mdb is truncated"),
    ({"--images": "foreign"}, "is not an LMDB data file"),
    ({"--methods": "HC-X-1"}, "--methods: unknown method 'HC-X-1'"),
    ({"--methods": "HC-D-10"}, "--methods: method 'HC-D-10': the net has 10 classes"),
    ({"--methods": "FGSx0.5"}, "hard-positive scale must be >= 1"),
])
def test_cli_generate_bad_files_and_names(change, message, files, tmp_path, capsys):
    out = tmp_path / "out"
    change = {k: str(files.get(v, v)) for k, v in change.items()}
    code, err = cli(_generate_args(files, out, **change), capsys)
    assert code == 2 and message in err, err
    assert not trusted_output(out)


def test_cli_generate_folder_of_broken_images(files, tmp_path, capsys):
    for name, message in [("truncated", "is truncated"), ("cut_jpeg", "is truncated"),
                          ("deep", "has 16-bit pixels"), ("text", "is not an image file"),
                          ("float", "floating-point")]:
        folder = tmp_path / name / "7"
        folder.mkdir(parents=True)
        shutil.copy(files[name], folder / files[name].name)
        out = tmp_path / f"out_{name}"
        code, err = cli(_generate_args(files, out, **{"--images": str(folder.parent)}), capsys)
        assert code == 2 and message in err, (name, err)
        assert not trusted_output(out)


@pytest.mark.parametrize("a, b, message", [
    ("png", "missing.png", "image 'missing.png' does not exist"),
    ("truncated", "png", "is truncated"),
    ("deep", "png", "has 16-bit pixels"),
    ("png", "small", "the images differ in size"),
    ("text", "png", "is not an image file"),
])
def test_cli_pass_bad_images(a, b, message, files, capsys):
    code, err = cli(["pass", files.get(a, a), files.get(b, b)], capsys)
    assert code == 2 and message in err, err


def test_cli_generate_limit_above_the_set_is_clamped_with_a_warning(files, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = cli(_generate_args(files, out, **{"--limit": "1000"}), capsys)
    assert code == 0 and "--limit 1000 is more than the 40 images" in err


# ---------------------------------------------------------------- output directories that protect themselves

def test_generate_out_refuses_other_settings_and_overwrite_starts_over(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(_generate_args(files, out, **{"--limit": "20"}), capsys)[0] == 0
    first = (out / "metadata.csv").read_text()
    for change, named in [({"--limit": "40"}, "inputs.images"), ({"--methods": "FGV", "--limit": "20"},
                                                                  "config.methods"),
                          ({"--tau": "0.5", "--limit": "20"}, "config.tau")]:
        code, err = cli(_generate_args(files, out, **change), capsys)
        assert code == 2 and named in err and "pass --overwrite to start over" in err, err
        assert (out / "metadata.csv").read_text() == first  # untouched
    code, _ = cli(_generate_args(files, out, **{"--limit": "40", "--overwrite": ""})[:-1] + ["--overwrite"], capsys)
    assert code == 0
    assert len((out / "metadata.csv").read_text().splitlines()) > len(first.splitlines())
    assert cli(_generate_args(files, out, **{"--limit": "20"}), capsys)[0] == 2


def test_generate_out_into_a_foreign_folder_is_refused_even_with_overwrite(files, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    for extra in ([], ["--overwrite"]):
        code, err = cli(_generate_args(files, out) + extra, capsys)
        assert code == 2 and "was not made by hotcold" in err
    assert (out / "thesis.tex").read_text() == "precious" and not trusted_output(out)


def test_a_second_writer_fails_at_once_naming_the_holder(files, tmp_path, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from hotcold._guard import DirectoryLock\n"
        f"with DirectoryLock({str(out)!r}, 'test holder'):\n"
        "    print('locked', flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.time()
        code, err = cli(_generate_args(files, out), capsys)
        assert code == 2 and f"pid {holder.pid}" in err and "being written by another process" in err
        assert time.time() - start < 30
    finally:
        holder.kill()
        holder.wait()
    # The holder died: its lock is stale and is taken over.
    assert cli(_generate_args(files, out), capsys)[0] == 0


def test_claim_names_differences_and_plain_names():
    with pytest.raises(ValueError, match="plain name"):
        check_plain_name("../up", "name")
    with pytest.raises(ValueError, match="plain name"):
        check_plain_name("", "name")


def test_claim_refuses_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(OutputDirError, match="is a file, not a directory"):
        claim(target, {"kind": "t"})


def test_lock_is_released_for_the_next_writer(tmp_path):
    with DirectoryLock(tmp_path / "d", "first"):
        with pytest.raises(OutputDirError, match=f"pid {os.getpid()}"):
            with DirectoryLock(tmp_path / "d", "second"):
                pass
    with DirectoryLock(tmp_path / "d", "third"):
        pass


# ---------------------------------------------------------------- YAML: everything checked before any work

BASE_YAML = "name: bad\n"


@pytest.mark.parametrize("body, message", [
    ("seed: -1", "seed: must be >= 0"),
    ("seed: 1.7", "seed: expected an integer, got 1.7"),
    ("seed: true", "seed: expected an integer"),
    ("generate: {scales: [1.0, .nan]}", r"generate.scales[1]: expected a finite number"),
    ("generate: {tau: .inf}", "generate.tau: expected a finite number"),
    ("generate: {tau: 1.2}", "generate.tau: PASS threshold must be in [0, 1]"),
    ("generate: {scales: []}", "generate.scales: give at least one scale"),
    ("generate: {max_eps: 0}", "generate.max_eps: must be > 0"),
    ("generate: {source_images: 70000}", "generate.source_images: MNIST has 60,000 images there"),
    ("evaluate: {source_images: 20000}", "evaluate.source_images: MNIST has 10,000 images there"),
    ("train: {iterations: 100, snapshot_every: 500}", "train.snapshot_every: 500 is more than train.iterations"),
    ("train: {nets: 0}", "train.nets: must be >= 1"),
    ("train: [1, 2]", "train: expected a mapping"),
    ("seed: 1\nseed: 2", "key 'seed' is given twice"),
    ("device: tpu", "device: device must be 'cpu', 'gpu' or 'gpu:N'"),
    ("model: alexnet", "model: no model description 'alexnet'"),
    ("finetune: {lr_schedule: warm}", "finetune.lr_schedule: must be 'restart' or 'continue'"),
    ("finetune: {training_sets: [{name: A, methods: [FGS]}, {name: A, methods: [FGV]}]}", "names must be unique"),
    ("generate: {chunk_size: 0}", "generate.chunk_size: must be >= 1"),
    ("name2: x", "name2: unknown key"),
])
def test_yaml_rejected_before_any_work(body, message, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BASE_YAML + body + "\n")
    with pytest.raises(ValueError) as info:
        load_experiment(path)
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ".hidden", "x y"])
def test_yaml_run_names_are_plain(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: {json.dumps(name)}\n")
    code, err = cli(["run", path], capsys)
    assert code == 2 and "name must be a plain name" in err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_yaml_that_is_not_yaml(tmp_path, capsys):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage: [")
    code, err = cli(["run", path], capsys)
    assert code == 2 and "is not valid YAML" in err


def test_unknown_experiment_lists_the_built_in_ones(capsys):
    code, err = cli(["run", "mnist_quik"], capsys)
    assert code == 2 and "built-in: imagenet_fig3, imagenet_googlenet_hp, mnist_3nets, mnist_fig6, mnist_quick, mnist_table1" in err


# ---------------------------------------------------------------- run directories

def test_run_out_of_another_experiment_is_refused_and_kept(tmp_path, capsys):
    other = tmp_path / "other_run"
    claim(other, {"kind": "hotcold run", "experiment": "someone_else", "code_version": "0"})
    (other / "train").mkdir()
    (other / "train" / "final.caffemodel").write_bytes(b"weights")
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\n")
    code, err = cli(["run", path, "--out", other], capsys)
    assert code == 2 and "experiment: 'someone_else' there, 'mine' now" in err
    assert (other / "train" / "final.caffemodel").read_bytes() == b"weights"


def test_unit_computed_with_another_config_is_an_error_naming_it(tmp_path):
    from hotcold.pipeline.runner import plan
    from hotcold.pipeline.units import Unit, execute

    first = Unit("generate/x", _echo_unit, {"tau": 0.5})
    execute(str(tmp_path), first, {}, "v", False)
    changed = Unit("generate/x", _echo_unit, {"tau": 0.9})
    with pytest.raises(OutputDirError, match=r"unit 'generate/x' .*config.tau: 0.5 there, 0.9 now.*pass --overwrite"):
        plan([changed], tmp_path, "v", overwrite=False)
    with pytest.raises(OutputDirError, match=r"code_version: 'v' there, 'w' now"):
        plan([first], tmp_path, "w", overwrite=False)
    done, todo = plan([changed], tmp_path, "v", overwrite=True)
    assert not done and [u.key for u in todo] == ["generate/x"]


def _echo_unit(run, inputs, **config):
    return dict(config)


# ---------------------------------------------------------------- API

def test_api_generate_rejects_meaningless_numbers(lenet, correct_test_digits):
    from hotcold.core.generator import generate_batches

    images, labels = correct_test_digits
    for kwargs, error, message in [({"tau": math.nan}, ValueError, "tau must be in [0, 1]"),
                                   ({"scales": (1.0, math.inf)}, ValueError, "finite values >= 1"),
                                   ({"scales": (math.nan,)}, ValueError, "finite values >= 1"),
                                   ({"chunk_size": 0}, ValueError, "chunk_size must be >= 1")]:
        with pytest.raises(error) as info:
            next(generate_batches(lenet, images[:2], labels[:2], ["FGS"], **kwargs))
        assert message in str(info.value)


def test_api_classifier_settings(lenet_weights):
    from hotcold.caffe.classifier import CaffeClassifier
    from hotcold.caffe.zoo import load_model

    deploy = load_model("lenet").deploy_prototxt
    for kwargs, message in [({"batch_size": 0}, "batch_size must be >= 1"),
                            ({"input_scale": math.nan}, "input_scale must be > 0"),
                            ({"mean": [1, 2]}, "mean must be a scalar or 1 finite per-channel values")]:
        with pytest.raises(ValueError) as info:
            CaffeClassifier(deploy, lenet_weights, logits_blob="ip2", **kwargs)
        assert message in str(info.value)


def test_api_images_that_are_not_uint8(lenet):
    with pytest.raises(TypeError, match="images must be uint8"):
        lenet.classify(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match="images must have shape N x 28 x 28"):
        lenet.classify(np.zeros((2, 32, 32), np.uint8))


def test_api_damaged_lmdb_never_kills_the_process(files):
    for name, message in [("damaged", "is truncated"), ("foreign", "is not an LMDB data file")]:
        code = (f"from hotcold.caffe.lmdb_io import read_datum_lmdb\n"
                f"try:\n    read_datum_lmdb({str(files[name])!r})\n"
                f"except ValueError as e:\n    print(e)\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0 and message in done.stdout, (done.returncode, done.stderr[-500:])


def test_api_lmdb_records_that_are_not_datums(tmp_path):
    import lmdb

    path = tmp_path / "junk.lmdb"
    with lmdb.open(str(path), map_size=1 << 20) as env, env.begin(write=True) as txn:
        txn.put(b"00000000", b"\xff\xff\xff\xff not a datum")
    with pytest.raises(ValueError, match="is not a Caffe Datum"):
        read_datum_lmdb(path)


def test_api_full_disk_before_a_snapshot_is_an_error_not_an_abort(mnist_lmdbs, tmp_path, monkeypatch):
    import hotcold.caffe.train as train_module
    from hotcold.caffe.solver import SolverSettings

    real = shutil.disk_usage

    def nearly_full(path):
        usage = real(path)
        return usage._replace(free=1 << 16)

    monkeypatch.setattr(train_module.shutil, "disk_usage", nearly_full)
    with pytest.raises(OSError, match="MiB free, the snapshot needs about"):
        train_module.train("lenet", tmp_path / "t", SolverSettings(seed=0, max_iter=4, snapshot_every=2),
                           train_lmdb=mnist_lmdbs["train"], test_lmdb=mnist_lmdbs["test"])
    assert not (tmp_path / "t" / "final.caffemodel").exists()
