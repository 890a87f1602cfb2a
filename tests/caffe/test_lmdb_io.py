"""Datum LMDBs: our reader, Caffe's own Data layer, resumable appends, shuffled
mixes (the fine-tuning sets of paper Sec. 5.2), and the LeNet prototxts that
read them."""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from types import ModuleType

import lmdb
import numpy as np
import pytest
from google.protobuf import text_format

from hotcold.caffe import lmdb_io
from hotcold.caffe.lmdb_io import (
    DatumLmdbAppender,
    iter_datum_lmdb,
    read_datum_lmdb,
    write_datum_lmdb,
    write_shuffled_mix,
)
from hotcold.caffe.runtime import caffe_pb2, import_caffe

REPO = Path(__file__).resolve().parents[2]
PROTOTXT = REPO / "prototxt"


@pytest.fixture(scope="session")
def caffe() -> ModuleType:
    return import_caffe()


def make_images(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def raw_records(path: Path) -> list[tuple[bytes, bytes]]:
    with lmdb.open(str(path), readonly=True) as env, env.begin() as txn:
        return list(txn.cursor())


# Non-square images catch H/W mix-ups; 3 channels catch HWC/CHW mix-ups.
SHAPES = pytest.mark.parametrize("shape", [(5, 7), (5, 7, 3)], ids=["gray", "color"])


@SHAPES
def test_round_trip(tmp_path: Path, shape: tuple[int, ...]) -> None:
    images = make_images(37, shape, seed=0)
    labels = np.arange(37) * 3 - 20
    path = write_datum_lmdb(tmp_path / "db", images, labels, commit_every=10)
    got = read_datum_lmdb(path)
    np.testing.assert_array_equal(got.images, images)
    np.testing.assert_array_equal(got.labels, labels)
    assert got.labels.dtype == np.int64 and got.images.dtype == np.uint8
    assert got.keys == [f"{i:08d}" for i in range(37)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]  # no .tmp left


@SHAPES
def test_records_are_datums_in_chw_order(tmp_path: Path, shape: tuple[int, ...]) -> None:
    images = make_images(3, shape, seed=1)
    write_datum_lmdb(tmp_path / "db", images, [7, 8, 9])
    chw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    datum = caffe_pb2().Datum()
    for i, (key, value) in enumerate(raw_records(tmp_path / "db")):
        datum.ParseFromString(value)
        assert key == f"{i:08d}".encode()
        assert (datum.channels, datum.height, datum.width) == chw.shape[1:]
        assert datum.data == chw[i].tobytes()
        assert datum.label == 7 + i and not datum.encoded


def test_iter_in_batches(tmp_path: Path) -> None:
    images = make_images(37, (4, 4, 2), seed=2)
    write_datum_lmdb(tmp_path / "db", images, np.arange(37))
    batches = list(iter_datum_lmdb(tmp_path / "db", batch_size=10))
    assert [len(b.keys) for b in batches] == [10, 10, 10, 7]
    np.testing.assert_array_equal(np.concatenate([b.images for b in batches]), images)
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), np.arange(37))


def test_custom_keys_are_read_in_key_order(tmp_path: Path) -> None:
    images = make_images(3, (2, 2), seed=3)
    path = write_datum_lmdb(tmp_path / "db", images, [0, 1, 2], keys=["b", "c", "a"])
    got = read_datum_lmdb(path)
    assert got.keys == ["a", "b", "c"]
    np.testing.assert_array_equal(got.images, images[[2, 0, 1]])


def test_key_width_grows_past_1e8() -> None:
    assert lmdb_io._index_keys(3) == ["00000000", "00000001", "00000002"]
    assert lmdb_io._key_width(10**8 + 1) == 9


def test_failed_write_leaves_nothing_at_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    original = DatumLmdbAppender._append_chw

    def crash_on_second_chunk(self, *args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        original(self, *args)

    monkeypatch.setattr(DatumLmdbAppender, "_append_chw", crash_on_second_chunk)
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_datum_lmdb(
            tmp_path / "db", make_images(30, (3, 3), 4), np.zeros(30, int), commit_every=10
        )
    assert list(tmp_path.iterdir()) == []


def test_stale_tmp_is_replaced_and_overwrite_is_explicit(tmp_path: Path) -> None:
    path = tmp_path / "db"
    # An LMDB left at db.tmp by a killed run.
    write_datum_lmdb(tmp_path / "stale", make_images(2, (3, 3), 5), [1, 1])
    (tmp_path / "stale").rename(tmp_path / "db.tmp")
    first = make_images(4, (3, 3), 6)
    write_datum_lmdb(path, first, [0, 1, 2, 3])
    np.testing.assert_array_equal(read_datum_lmdb(path).images, first)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_datum_lmdb(path, first, [0, 1, 2, 3])
    second = make_images(2, (3, 3), 7)
    write_datum_lmdb(path, second, [5, 6], overwrite=True)
    np.testing.assert_array_equal(read_datum_lmdb(path).images, second)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db"]


def test_overwrite_refuses_non_lmdb_directory(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an LMDB directory"):
        write_datum_lmdb(tmp_path / "db", make_images(1, (2, 2), 0), [0], overwrite=True)
    assert (tmp_path / "db" / "notes.txt").exists()


TWO = np.zeros((2, 3, 3), np.uint8)


@pytest.mark.parametrize(
    ("images", "labels", "kwargs", "error", "match"),
    [
        (np.zeros((2, 3, 3), np.float32), [0, 1], {}, TypeError, "must be uint8"),
        ([[[0]]], [0], {}, TypeError, "numpy array"),
        (np.zeros((2, 3), np.uint8), [0, 1], {}, ValueError, "N x H x W"),
        (TWO, [0], {}, ValueError, "one integer per image"),
        (TWO, [0.0, 1.0], {}, TypeError, "labels must be integers"),
        (TWO, [0, 2**31], {}, ValueError, "int32"),
        (np.zeros((0, 3, 3), np.uint8), [], {}, ValueError, "empty"),
        (TWO, [0, 1], {"keys": ["a", "a"]}, ValueError, "unique"),
        (TWO, [0, 1], {"keys": ["a"]}, ValueError, "one key per image"),
        (TWO, [0, 1], {"keys": ["a", ""]}, ValueError, "non-empty ASCII"),
        (TWO, [0, 1], {"keys": ["a", "é"]}, ValueError, "non-empty ASCII"),
        (TWO, [0, 1], {"keys": ["a", "b" * 600]}, ValueError, "limit of 511"),
        (TWO, [0, 1], {"commit_every": 0}, ValueError, "commit_every"),
    ],
)
def test_write_rejects_bad_input(tmp_path: Path, images, labels, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        write_datum_lmdb(tmp_path / "db", images, labels, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_read_rejects_non_lmdb(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no data.mdb"):
        read_datum_lmdb(tmp_path)


def test_map_grows_when_full(tmp_path: Path) -> None:
    images = make_images(500, (28, 28), seed=8)  # ~400 KB of records
    with DatumLmdbAppender(tmp_path / "db", map_size=64 << 10) as out:
        out.append(images, np.arange(500), [f"{i:08d}" for i in range(500)])
    np.testing.assert_array_equal(read_datum_lmdb(tmp_path / "db").images, images)


def test_appender_resumes_and_keeps_keys_unique(tmp_path: Path) -> None:
    path = tmp_path / "gen"
    images = make_images(30, (6, 6), seed=9)
    keys = [f"{i:08d}" for i in range(30)]
    with DatumLmdbAppender(path) as out:
        assert len(out) == 0 and out.shape is None
        out.append(images[:10], np.arange(10), keys[:10])
        out.append(images[:0], np.arange(0), [])  # an empty chunk is a no-op
    with DatumLmdbAppender(path) as out:  # a later run continues the LMDB
        assert len(out) == 10 and out.keys() == keys[:10] and out.shape == (1, 6, 6)
        assert "00000003" in out and "00000010" not in out and "é" not in out
        todo = [i for i in range(20) if keys[i] not in out]
        out.append(images[todo], np.array(todo), [keys[i] for i in todo])
        # One already stored key spoils the whole chunk: nothing of it is written.
        with pytest.raises(ValueError, match="'00000019' is already stored.*nothing of this chunk"):
            out.append(images[19:25], np.arange(19, 25), keys[19:25])
        assert len(out) == 20 and "00000020" not in out
        with pytest.raises(ValueError, match="unique"):
            out.append(images[20:22], [20, 21], ["00000020", "00000020"])
        with pytest.raises(ValueError, match="Caffe batches need one shape"):
            out.append(make_images(1, (5, 5), 0), [0], ["x"])
        with pytest.raises(TypeError, match="single str"):
            out.append(images[20:21], [20], "00000020")
    got = read_datum_lmdb(path)
    assert got.keys == keys[:20]
    np.testing.assert_array_equal(got.images, images[:20])
    np.testing.assert_array_equal(got.labels, np.arange(20))


def test_appender_refuses_non_lmdb_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not an LMDB directory"):
        DatumLmdbAppender(tmp_path)


def test_shuffled_mix_is_a_seeded_permutation(tmp_path: Path) -> None:
    a_images, b_images = make_images(37, (4, 5), 10), make_images(23, (4, 5), 11)
    a = write_datum_lmdb(tmp_path / "a", a_images, np.arange(37))
    b = write_datum_lmdb(tmp_path / "b", b_images, np.arange(100, 123))
    assert write_shuffled_mix(tmp_path / "mix", [a, b], seed=5, commit_every=7) == 60
    mix = read_datum_lmdb(tmp_path / "mix")
    all_images = np.concatenate([a_images, b_images])
    all_labels = np.concatenate([np.arange(37), np.arange(100, 123)])
    order = np.random.default_rng(5).permutation(60)
    np.testing.assert_array_equal(mix.images, all_images[order])
    np.testing.assert_array_equal(mix.labels, all_labels[order])
    assert mix.keys == [f"{i:08d}" for i in range(60)]
    # Records are copied byte for byte.
    source_values = {v for _, v in raw_records(a) + raw_records(b)}
    assert Counter(v for _, v in raw_records(tmp_path / "mix")) == Counter(source_values)

    write_shuffled_mix(tmp_path / "again", [str(a), str(b)], seed=5)
    assert raw_records(tmp_path / "again") == raw_records(tmp_path / "mix")
    write_shuffled_mix(tmp_path / "other", [a, b], seed=6)
    assert not np.array_equal(read_datum_lmdb(tmp_path / "other").labels, mix.labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "again", "b", "mix", "other"]


def test_shuffled_mix_rejects_bad_input(tmp_path: Path) -> None:
    a = write_datum_lmdb(tmp_path / "a", make_images(3, (4, 4), 0), [0, 1, 2])
    c = write_datum_lmdb(tmp_path / "c", make_images(3, (4, 4, 3), 0), [0, 1, 2])
    with DatumLmdbAppender(tmp_path / "empty"):
        pass
    with pytest.raises(ValueError, match="non-empty list"):
        write_shuffled_mix(tmp_path / "m", [], seed=0)
    with pytest.raises(ValueError, match="non-empty list"):
        write_shuffled_mix(tmp_path / "m", str(a), seed=0)
    with pytest.raises(TypeError, match="seed must be an int"):
        write_shuffled_mix(tmp_path / "m", [a], seed=None)
    with pytest.raises(ValueError, match="different C x H x W shapes"):
        write_shuffled_mix(tmp_path / "m", [a, c], seed=0)
    with pytest.raises(ValueError, match="all empty"):
        write_shuffled_mix(tmp_path / "m", [tmp_path / "empty"], seed=0)
    with pytest.raises(ValueError, match="also one of the sources"):
        write_shuffled_mix(a, [a], seed=0, overwrite=True)
    with pytest.raises(FileNotFoundError, match="no data.mdb"):
        write_shuffled_mix(tmp_path / "m", [tmp_path / "missing"], seed=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "c", "empty"]


# --- Caffe reads what we write -------------------------------------------------------

DATA_NET = """
name: "datum_check"
layer {{
  name: "data" type: "Data" top: "data" top: "label"
  data_param {{ source: "{source}" batch_size: {batch} backend: LMDB }}
}}
"""


@SHAPES
def test_caffe_data_layer_reads_records_in_order(
    caffe: ModuleType, tmp_path: Path, shape: tuple[int, ...]
) -> None:
    n, batch = 37, 10
    images = make_images(n, shape, seed=12)
    labels = np.arange(n) * 5 + 3
    write_datum_lmdb(tmp_path / "db", images, labels, commit_every=8)
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(DATA_NET.format(source=tmp_path / "db", batch=batch))
    net = caffe.Net(str(prototxt), caffe.TEST)
    chw = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    for step in range(8):  # 80 records: wraps around the 37 twice
        net.forward()
        idx = (np.arange(batch) + step * batch) % n
        np.testing.assert_array_equal(net.blobs["data"].data, chw[idx].astype(np.float32))
        np.testing.assert_array_equal(net.blobs["label"].data, labels[idx].astype(np.float32))


# --- the LeNet prototxts (paper Sec. 5.2) -------------------------------------------

LENET_LAYERS = ["conv1", "pool1", "conv2", "pool2", "ip1", "relu1", "ip2"]


def parse(path: Path, message) -> object:
    return text_format.Parse(path.read_text(), message)


def test_lenet_prototxts_parse_with_caffe_settings() -> None:
    pb2 = caffe_pb2()
    train = parse(PROTOTXT / "lenet_train_test.prototxt", pb2.NetParameter())
    deploy = parse(PROTOTXT / "lenet_deploy.prototxt", pb2.NetParameter())
    solver = parse(PROTOTXT / "lenet_solver.prototxt", pb2.SolverParameter())

    data = {pb2.Phase.Name(l.include[0].phase): l for l in train.layer if l.type == "Data"}
    assert data["TRAIN"].data_param.source == "TRAIN_LMDB"
    assert data["TEST"].data_param.source == "TEST_LMDB"
    assert (data["TRAIN"].data_param.batch_size, data["TEST"].data_param.batch_size) == (64, 100)
    for layer in data.values():
        assert layer.data_param.backend == pb2.DataParameter.LMDB
        assert layer.transform_param.scale == pytest.approx(1 / 256)
    assert [l.name for l in train.layer if l.type != "Data"] == [*LENET_LAYERS, "accuracy", "loss"]
    learned = {l.name: l for l in train.layer if l.param}
    assert set(learned) == {"conv1", "conv2", "ip1", "ip2"}
    for layer in learned.values():
        assert [p.lr_mult for p in layer.param] == [1, 2]
    accuracy = next(l for l in train.layer if l.type == "Accuracy")
    assert accuracy.include[0].phase == pb2.TEST

    assert deploy.force_backward
    assert [l.name for l in deploy.layer] == ["data", *LENET_LAYERS, "prob"]
    assert list(deploy.layer[0].input_param.shape[0].dim) == [1, 1, 28, 28]
    # Same layers, same settings, so trained weights load into the deploy net.
    for name in LENET_LAYERS:
        t = next(l for l in train.layer if l.name == name)
        d = next(l for l in deploy.layer if l.name == name)
        t.ClearField("param")
        assert t == d, name

    assert solver.net == "NET_PROTOTXT"
    assert (solver.base_lr, solver.momentum, solver.weight_decay) == pytest.approx(
        (0.01, 0.9, 0.0005)
    )
    assert (solver.lr_policy, solver.gamma, solver.power) == ("inv", pytest.approx(1e-4), 0.75)
    assert (solver.display, solver.max_iter, solver.snapshot) == (100, 10000, 5000)
    assert (solver.test_iter[0], solver.test_interval) == (100, 500)
    assert solver.solver_mode == pb2.SolverParameter.CPU


def fill_placeholders(template: Path, target: Path, **values: Path) -> Path:
    """Write ``template`` to ``target`` with each placeholder NAME replaced by its path."""
    text = template.read_text()
    for name, value in values.items():
        assert name in text, name
        text = text.replace(name, str(value))
    target.write_text(text)
    return target


def test_lenet_deploy_net_blobs(caffe: ModuleType) -> None:
    net = caffe.Net(str(PROTOTXT / "lenet_deploy.prototxt"), caffe.TEST)
    shapes = {name: blob.data.shape for name, blob in net.blobs.items()}
    assert shapes == {
        "data": (1, 1, 28, 28),
        "conv1": (1, 20, 24, 24),
        "pool1": (1, 20, 12, 12),
        "conv2": (1, 50, 8, 8),
        "pool2": (1, 50, 4, 4),
        "ip1": (1, 500),
        "ip2": (1, 10),
        "prob": (1, 10),
    }
    net.blobs["data"].reshape(4, 1, 28, 28)
    net.blobs["data"].data[...] = make_images(4, (1, 28, 28), 13) / 256.0
    net.forward()
    assert net.blobs["ip2"].data.shape == (4, 10)
    np.testing.assert_allclose(net.blobs["prob"].data.sum(axis=1), 1, rtol=1e-5)
    # force_backward: a gradient reaches the input blob.
    net.blobs["prob"].diff[...] = np.eye(10, dtype=np.float32)[[0, 1, 2, 3]]
    net.backward()
    assert np.abs(net.blobs["data"].diff).max() > 0


def test_lenet_train_test_net_reads_our_lmdbs_and_shares_weights(
    caffe: ModuleType, tmp_path: Path
) -> None:
    images = make_images(150, (28, 28), seed=14)
    labels = np.arange(150) % 10
    write_datum_lmdb(tmp_path / "train", images[:100], labels[:100])
    write_datum_lmdb(tmp_path / "test", images[100:], labels[100:])
    net_path = fill_placeholders(
        PROTOTXT / "lenet_train_test.prototxt",
        tmp_path / "train_test.prototxt",
        TRAIN_LMDB=tmp_path / "train",
        TEST_LMDB=tmp_path / "test",
    )
    test_net = caffe.Net(str(net_path), caffe.TEST)
    test_net.forward()
    assert test_net.blobs["data"].data.shape == (100, 1, 28, 28)
    wrapped = np.concatenate([images[100:], images[100:]])[:100]
    np.testing.assert_allclose(test_net.blobs["data"].data[:, 0], wrapped / 256.0, rtol=1e-6)
    assert {"accuracy", "loss"} <= set(test_net.blobs)

    train_net = caffe.Net(str(net_path), caffe.TRAIN)
    train_net.forward()
    assert train_net.blobs["data"].data.shape == (64, 1, 28, 28)
    assert "accuracy" not in train_net.blobs
    weights = tmp_path / "lenet.caffemodel"
    train_net.save(str(weights))
    deploy = caffe.Net(str(PROTOTXT / "lenet_deploy.prototxt"), caffe.TEST, weights=str(weights))
    for name in ["conv1", "conv2", "ip1", "ip2"]:
        for got, want in zip(deploy.params[name], train_net.params[name]):
            np.testing.assert_array_equal(got.data, want.data)


def test_lenet_solver_builds(caffe: ModuleType, tmp_path: Path) -> None:
    images = make_images(20, (28, 28), seed=15)
    for split in ("train", "test"):
        write_datum_lmdb(tmp_path / split, images, np.arange(20) % 10)
    net_path = fill_placeholders(
        PROTOTXT / "lenet_train_test.prototxt",
        tmp_path / "train_test.prototxt",
        TRAIN_LMDB=tmp_path / "train",
        TEST_LMDB=tmp_path / "test",
    )
    solver_path = fill_placeholders(
        PROTOTXT / "lenet_solver.prototxt",
        tmp_path / "solver.prototxt",
        NET_PROTOTXT=net_path,
        SNAPSHOT_PREFIX=tmp_path / "lenet",
    )
    solver = caffe.SGDSolver(str(solver_path))
    assert solver.net.blobs["data"].data.shape == (64, 1, 28, 28)
    assert math.prod(solver.net.params["ip1"][0].data.shape) == 500 * 50 * 4 * 4
