"""Sec. 5.3 end to end on the GoogLeNet architecture: ImageNet-style folders to LMDBs, selection of correctly
classified originals, hot/cold hard positives with PASS >= tau, the mixed BGR training LMDB, fine-tuning through
Caffe's solver, top-1 / top-5 error and the report."""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from hotcold.caffe.lmdb_io import read_datum_lmdb
from hotcold.caffe.zoo import load_model
from hotcold.data.imagenet import center_crop
from hotcold.data.records import read_records
from hotcold.pipeline.runner import run_experiment
from hotcold.report.imagenet import paper_gain_per_image


@pytest.fixture
def hp_config(googlenet_stand_in, photo_folder, tmp_path):
    config = {"kind": "imagenet_hp", "name": "hp_test", "model": str(googlenet_stand_in),
              "weights": str(googlenet_stand_in.parent / "weights.caffemodel"),
              "data": {"train": str(photo_folder), "val": str(photo_folder)},
              "select": {"per_class": 2},
              "generate": {"methods": ["HC-D-1..3"], "tau": 0.9, "target": 5, "chunk_size": 2, "shard_images": 4},
              "finetune": {"iterations": 4, "batch_size": 3, "snapshot_every": 2},
              "execution": {"executor": "local"}}
    path = tmp_path / "hp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_hard_positive_fine_tune(hp_config, googlenet_stand_in, tmp_path):
    run = run_experiment(hp_config, out=tmp_path / "run", progress=False)
    units = lambda key: json.loads((run / "units" / f"{key}.json").read_text())["result"]  # noqa: E731

    # select: correctly classified training images, at most per_class of each class, in the LMDB's order
    clf = load_model(googlenet_stand_in).classifier(googlenet_stand_in.parent / "weights.caffemodel")
    selected = read_datum_lmdb(run / "select" / "originals.lmdb")
    assert len(selected.keys) == units("select")["selected"] > 0
    assert (clf.classify(np.ascontiguousarray(selected.images[..., ::-1])) == selected.labels).all()  # BGR records
    assert np.bincount(selected.labels, minlength=4).max() <= 2
    train = read_datum_lmdb(run / "data" / "train_lmdb")
    order = [train.keys.index(k) for k in selected.keys]
    assert order == sorted(order)

    # generate: hard positives of the selected originals, PASS >= tau for the accepted ones
    records = read_records(run / "generate" / "metadata.csv")
    assert set(records.method) <= {"HC-D-1", "HC-D-2", "HC-D-3"}
    assert (records.pass_score[records.accepted] >= 0.9).all()

    # mix: the first `target` accepted hard positives plus every training center crop, in BGR
    mix = units("mix")
    assert mix["hard_positives"] == min(5, int(records.accepted.sum()))
    mixed = read_datum_lmdb(run / "finetune" / "train.lmdb")
    assert len(mixed.keys) == mix["images"] == mix["hard_positives"] + len(train.keys)
    assert mixed.images.shape[1:] == (224, 224, 3)
    crops = center_crop(train.images, 224)
    as_bytes = {im.tobytes() for im in mixed.images}
    assert all(c.tobytes() in as_bytes for c in crops)  # BGR center crops, as convert_imageset stores them
    generated = read_datum_lmdb(run / "generate" / "images.lmdb")
    chosen = [i for i, k in enumerate(generated.keys) if k in set(records.key[records.accepted][:5].tolist())]
    assert len(chosen) == mix["hard_positives"]
    assert all(generated.images[i].tobytes() in as_bytes for i in chosen)
    # the generated records are BGR: the net classifies them, swapped back to RGB, as recorded
    predicted = dict(zip(records.key.tolist(), records.predicted.tolist()))
    rgb = np.ascontiguousarray(generated.images[..., ::-1])
    assert clf.classify(rgb).tolist() == [predicted[k] for k in generated.keys]

    # fine-tune, evaluate, report
    assert not (run / "finetune" / "crops.lmdb").exists()  # mixed, then deleted
    assert (run / units("finetune")["weights"]).is_file()
    for key in ("evaluate/base", "evaluate/finetuned"):
        result = units(key)
        assert result["images"] == 12 and 0 <= result["top5_error"] <= result["top1_error"] <= 100
    report = (run / "report" / "finetune.md").read_text()
    assert "30.552" in report and "10.604" in report and "fine-tuned with hard positives" in report

    # a second run finds every unit done and leaves the results as they are
    weights = (run / units("finetune")["weights"]).read_bytes()
    run_experiment(hp_config, out=tmp_path / "run", progress=False)
    assert (run / units("finetune")["weights"]).read_bytes() == weights


def test_missing_imagenet_says_where_to_put_it(hp_config, tmp_path, monkeypatch):
    raw = yaml.safe_load(hp_config.read_text())
    raw["data"] = {"train": None, "val": None}
    hp_config.write_text(yaml.safe_dump(raw))
    monkeypatch.delenv("HOTCOLD_IMAGENET_DIR", raising=False)
    with pytest.raises(ValueError, match="HOTCOLD_IMAGENET_DIR"):
        run_experiment(hp_config, out=tmp_path / "run", progress=False)


def test_gain_per_added_image_in_the_papers_unit():
    # [20]'s 10-crop and 144-crop figures, as Sec. 5.3 quotes them, come out of this unit.
    assert paper_gain_per_image(10.07 - 9.15, 10 * 1_200_000) == pytest.approx(7.67e-6, rel=1e-3)
    assert paper_gain_per_image(10.07 - 7.89, 144 * 1_200_000) == pytest.approx(1.26e-6, rel=3e-3)
    assert paper_gain_per_image(0.5175, 250_000) == pytest.approx(2.07e-4)
