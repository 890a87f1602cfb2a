"""Training with the real Caffe solver on real MNIST (paper Sec. 5.2): learning,
exact resume, the finished-run short cut, fine-tuning from a base net, the
"continue" learning-rate algebra, and input checks that keep glog CHECKs away."""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import hotcold.caffe.lmdb_io as lmdb_module
import hotcold.caffe.train as train_module
from hotcold.caffe.lmdb_io import read_datum_lmdb, shuffled_copy, write_datum_lmdb
from hotcold.caffe.runtime import caffe_pb2, import_caffe
from hotcold.caffe.solver import SolverSettings, continued_inv_schedule, render_solver
from hotcold.caffe.train import FINAL_WEIGHTS, TrainResult, train
from hotcold.caffe.zoo import load_model
from hotcold.pipeline.evaluation import error_rate

LENET = load_model("lenet")
BASE_ITERATIONS = 200


def weights_of(path: Path) -> dict[str, list[np.ndarray]]:
    net = caffe_pb2().NetParameter()
    net.ParseFromString(Path(path).read_bytes())
    return {layer.name: [np.array(blob.data) for blob in layer.blobs] for layer in net.layer if layer.blobs}


def max_difference(a: Path, b: Path) -> float:
    wa, wb = weights_of(a), weights_of(b)
    assert wa.keys() == wb.keys()
    return max(float(np.abs(x - y).max()) for name in wa for x, y in zip(wa[name], wb[name]))


@pytest.fixture(scope="module")
def lmdbs(mnist, tmp_path_factory) -> dict[str, Path]:
    """2,000 MNIST training and 500 test images as Datum LMDBs."""
    root = tmp_path_factory.mktemp("train_lmdb")
    return {
        "train_lmdb": write_datum_lmdb(root / "train", mnist.train_images[:2000], mnist.train_labels[:2000]),
        "test_lmdb": write_datum_lmdb(root / "test", mnist.test_images[:500], mnist.test_labels[:500]),
    }


@pytest.fixture(scope="module")
def base(lmdbs, tmp_path_factory) -> TrainResult:
    """A LeNet trained for 200 iterations from seed 0, uninterrupted."""
    out = tmp_path_factory.mktemp("base")
    return train(LENET, out, SolverSettings(seed=0, max_iter=BASE_ITERATIONS, snapshot_every=100, keep_snapshots=1), **lmdbs, progress=True)


@pytest.fixture(scope="module")
def half(lmdbs, tmp_path_factory) -> TrainResult:
    """The same run as ``base`` stopped at 100 iterations, snapshots every 50."""
    out = tmp_path_factory.mktemp("half")
    return train(LENET, out, SolverSettings(seed=0, max_iter=100, snapshot_every=50), **lmdbs)


def test_training_learns_mnist(base, mnist) -> None:
    assert (base.iterations, base.resumed, base.cached) == (BASE_ITERATIONS, False, False)
    assert base.weights.name == FINAL_WEIGHTS and base.final_loss < 1.0 and base.seconds > 0
    err = error_rate(LENET.classifier(base.weights), mnist.test_images[:500], mnist.test_labels[:500], batch=128)
    assert err < 0.25  # chance is 0.9
    # keep_snapshots=1 leaves the newest snapshot only (it is written at the end).
    assert sorted(p.name for p in base.weights.parent.glob("snapshot_*")) == [
        "snapshot_iter_200.caffemodel", "snapshot_iter_200.solverstate"]


def test_error_rate_counts_misclassified(base, mnist) -> None:
    classifier = LENET.classifier(base.weights)
    images, labels = mnist.test_images[:300], mnist.test_labels[:300]
    expected = np.mean(classifier.classify(images) != labels)
    assert error_rate(classifier, images, labels, batch=7) == pytest.approx(expected, abs=0)
    with pytest.raises(ValueError, match="one label per image"):
        error_rate(classifier, images, labels[:-1])


def test_finished_run_returns_without_caffe(base, lmdbs, monkeypatch) -> None:
    def no_caffe(*args, **kwargs):
        raise AssertionError("Caffe was imported for a finished run")

    monkeypatch.setattr(train_module, "import_caffe", no_caffe)
    again = train(LENET, base.weights.parent, SolverSettings(seed=0, max_iter=BASE_ITERATIONS, snapshot_every=100), **lmdbs)
    assert again.cached and not again.resumed
    assert (again.weights, again.iterations) == (base.weights, base.iterations)
    assert again.final_loss == pytest.approx(base.final_loss)


def test_resume_continues_from_latest_snapshot_exactly(base, half, lmdbs, tmp_path, caplog) -> None:
    out = tmp_path / "resume"
    shutil.copytree(half.weights.parent, out)  # a moved out_dir must resume too
    with caplog.at_level(logging.INFO, logger="hotcold.caffe.train"):
        result = train(LENET, out, SolverSettings(seed=0, max_iter=BASE_ITERATIONS, snapshot_every=50), **lmdbs)
    assert (result.resumed, result.cached, result.iterations) == (True, False, BASE_ITERATIONS)
    assert "restored snapshot_iter_100.solverstate" in caplog.text
    # The data layer is moved on to where iteration 100 left it, so 100 + 100 = 200 uninterrupted.
    assert max_difference(result.weights, base.weights) == 0.0


def test_damaged_snapshot_is_skipped(half, lmdbs, tmp_path) -> None:
    out = tmp_path / "damaged"
    shutil.copytree(half.weights.parent, out)
    (out / FINAL_WEIGHTS).unlink()
    newest = out / "snapshot_iter_100.solverstate"
    newest.write_bytes(newest.read_bytes()[:1000])  # as if the process died while writing it
    with pytest.warns(UserWarning, match="skipping snapshot .*snapshot_iter_100"):
        result = train(LENET, out, SolverSettings(seed=0, max_iter=100, snapshot_every=50), **lmdbs)
    assert result.resumed and result.iterations == 100
    assert max_difference(result.weights, half.weights) == 0.0


def test_out_dir_of_another_run_is_refused(base, lmdbs) -> None:
    with pytest.raises(ValueError, match="seed: 0 there, 1 now"):
        train(LENET, base.weights.parent, SolverSettings(seed=1, max_iter=BASE_ITERATIONS), **lmdbs)
    with pytest.raises(ValueError, match="already holds 200 iterations"):
        train(LENET, base.weights.parent, SolverSettings(seed=0, max_iter=100), **lmdbs)


def test_finetuning_starts_from_init_weights(base, lmdbs, tmp_path) -> None:
    # With a vanishing learning rate one iteration leaves the weights where they started.
    tuned = train(LENET, tmp_path / "tuned", SolverSettings(seed=1, max_iter=1, base_lr=1e-12, snapshot_every=0), **lmdbs, init_weights=base.weights)
    fresh = train(LENET, tmp_path / "fresh", SolverSettings(seed=1, max_iter=1, base_lr=1e-12, snapshot_every=0), **lmdbs)
    assert max_difference(tuned.weights, base.weights) < 1e-9
    assert max_difference(fresh.weights, base.weights) > 1e-2


def test_continued_inv_schedule_shifts_the_curve() -> None:
    # Caffe's inv policy (sgd_solver.cpp): lr(i) = base_lr * (1 + gamma * i) ** -power.
    base_lr, gamma, power = 0.01, 1e-4, 0.75
    i = np.arange(0, 20001, 25, dtype=np.float64)
    for base_iter in (0, 1, 10000, 123457):
        lr, g = continued_inv_schedule(base_lr, gamma, power, base_iter)
        np.testing.assert_allclose(lr * (1 + g * i) ** -power, base_lr * (1 + gamma * (base_iter + i)) ** -power,
                                   rtol=1e-12)


def test_continue_renders_a_solver_caffe_runs_at_the_shifted_rate(lmdbs, tmp_path) -> None:
    caffe = import_caffe()
    # base_iter=10000 (the paper's base nets) shifts the rate only when asked to continue.
    for schedule, expected in (("restart", 0.01), ("continue", 0.01 * 2 ** -0.75)):
        settings = SolverSettings(seed=0, max_iter=20000, lr_schedule=schedule, base_iter=10000)
        rendered = render_solver(LENET, tmp_path / schedule, settings, **lmdbs, test_interval=0)
        assert caffe.get_solver(str(rendered.solver_path)).lr == pytest.approx(expected, rel=1e-6)


def test_train_continue_needs_a_base_net(lmdbs, tmp_path) -> None:
    with pytest.raises(ValueError, match="init_weights="):
        train(LENET, tmp_path, SolverSettings(seed=0, max_iter=10, lr_schedule="continue", base_iter=10000), **lmdbs)


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"seed": -1}, ValueError, r"seed must be >= 0, got -1"),
        ({"seed": 1.5}, TypeError, r"seed must be an int"),
        ({"max_iter": 0}, ValueError, r"max_iter must be >= 1"),
        ({"base_lr": -0.01}, ValueError, r"base_lr must be a positive number"),
        ({"base_lr": float("nan")}, ValueError, r"base_lr must be a positive number"),
        ({"lr_schedule": "warm"}, ValueError, r"lr_schedule must be one of"),
        ({"lr_schedule": "continue"}, ValueError, r"needs base_iter="),
        ({"lr_schedule": "continue", "base_iter": -1}, ValueError, r"base_iter must be >= 0"),
        ({"snapshot_every": -5}, ValueError, r"snapshot_every must be >= 0"),
        ({"keep_snapshots": 0}, ValueError, r"keep_snapshots must be >= 1"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_solver_settings_reject_bad_values(change, error, match) -> None:
    with pytest.raises(error, match=match):
        SolverSettings(**{"seed": 0, "max_iter": 100, **change})


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"train_lmdb": "missing.lmdb"}, ValueError, r"train_lmdb=.*no data\.mdb"),
        ({"test_lmdb": "."}, ValueError, r"test_lmdb=.*no data\.mdb"),
        ({"test_interval": 0, "test_iter": 5}, ValueError, r"test_iter is meaningless with test_interval=0"),
        ({"solver_mode": "TPU"}, ValueError, r"solver_mode must be one of"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
def test_render_solver_rejects_bad_input(lmdbs, tmp_path, monkeypatch, change, error, match) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths in the table resolve here
    out = tmp_path / "run"
    with pytest.raises(error, match=match):
        render_solver(LENET, out, SolverSettings(seed=0, max_iter=100), **{**lmdbs, **change})
    assert not out.exists()  # nothing rendered for Caffe to read


def test_render_solver_fills_in_the_placeholders(lmdbs, tmp_path) -> None:
    rendered = render_solver("lenet", tmp_path, SolverSettings(seed=7, max_iter=300, snapshot_every=100), **lmdbs)
    text = rendered.solver_path.read_text() + (tmp_path / "train_test.prototxt").read_text()
    assert "random_seed: 7" in text and "max_iter: 300" in text and "snapshot: 100" in text
    assert f'"{tmp_path.resolve() / "snapshot"}"' in text and f'"{lmdbs["train_lmdb"]}"' in text
    assert not any(p in text for p in ("TRAIN_LMDB", "TEST_LMDB", "NET_PROTOTXT", "SNAPSHOT_PREFIX"))


def test_shuffled_copy_is_one_ordering_and_is_reused(lmdbs, tmp_path, monkeypatch) -> None:
    out = shuffled_copy(lmdbs["train_lmdb"], tmp_path / "order3", seed=3)
    source, copy = read_datum_lmdb(lmdbs["train_lmdb"]), read_datum_lmdb(out)
    order = np.random.default_rng(3).permutation(len(source.labels))
    np.testing.assert_array_equal(copy.images, source.images[order])
    np.testing.assert_array_equal(copy.labels, source.labels[order])

    def no_rewrite(*args, **kwargs):
        raise AssertionError("the existing copy was rewritten")

    monkeypatch.setattr(lmdb_module, "write_shuffled_mix", no_rewrite)
    assert shuffled_copy(lmdbs["train_lmdb"], out, seed=3) == out
    with pytest.raises(ValueError, match="not .* shuffled with seed=4"):
        shuffled_copy(lmdbs["train_lmdb"], out, seed=4)
