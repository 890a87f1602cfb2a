"""``hotcold generate`` on an ImageNet LMDB of ``hotcold data imagenet``: BGR 256 x 256 records in, center crops
classified as RGB, BGR records out; sharded on the executor with the same result."""
from __future__ import annotations

import csv

import numpy as np

from hotcold.caffe.lmdb_io import read_datum_lmdb
from hotcold.caffe.zoo import load_model
from hotcold.cli import main
from hotcold.data.imagenet import convert_imagenet, read_center_crops


def test_generate_from_an_imagenet_lmdb(googlenet_stand_in, photo_folder, tmp_path, capsys):
    convert_imagenet(tmp_path / "data", train=photo_folder, progress=False)
    source = tmp_path / "data" / "train_lmdb"
    weights = googlenet_stand_in.parent / "weights.caffemodel"
    common = ["generate", "--model", str(googlenet_stand_in), "--weights", str(weights), "--images", str(source),
              "--methods", "FGV", "HC-D-1", "--chunk-size", "4", "--net-name", "g", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert "using their center 224 x 224 crops" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "sharded"), "--shards", "2"]) == 0

    one, sharded = read_datum_lmdb(tmp_path / "one" / "images.lmdb"), read_datum_lmdb(tmp_path / "sharded" / "images.lmdb")
    assert one.keys == sharded.keys and len(one.keys) > 0
    np.testing.assert_array_equal(one.images, sharded.images)
    rows = {r["key"]: r for r in csv.DictReader((tmp_path / "one" / "metadata.csv").open())}
    clf = load_model(googlenet_stand_in).classifier(weights)
    rgb = np.ascontiguousarray(one.images[..., ::-1])  # records are BGR
    assert clf.classify(rgb).tolist() == [int(rows[k]["predicted"]) for k in one.keys]
    crops, labels, _ = next(read_center_crops(source, 224))
    for key, image in zip(one.keys, rgb):
        source_index = int(rows[key]["source_index"])
        assert int(rows[key]["label"]) == labels[source_index]
        eta = image.astype(float) - crops[source_index]
        assert np.abs(eta).max() == float(rows[key]["linf"])
