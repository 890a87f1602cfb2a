"""Fig. 3 (Sec. 4) end to end on the GoogLeNet and ResNet-152 architectures: photos, generation, PASS on
224 x 224 x 3, the figure and the table."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import yaml

from hotcold._guard import OutputDirError
from hotcold.caffe.zoo import load_model
from hotcold.core.metrics import perturbation_metrics
from hotcold.pipeline.runner import run_experiment


def test_fig3_on_both_architectures(googlenet_stand_in, resnet_stand_in, photo_folder, tmp_path):
    config = {"kind": "imagenet_fig3", "name": "fig3_test",
              "nets": [{"name": "GoogLeNet", "model": str(googlenet_stand_in), "weights": None},
                       {"name": "ResNet-152", "model": str(resnet_stand_in), "weights": None}],
              "images": str(photo_folder), "limit": 4, "methods": ["FGS", "FGV", "HC-D-1", "HC-D-3"], "tau": 0.99}
    for net, path in zip(config["nets"], (googlenet_stand_in, resnet_stand_in)):
        net["weights"] = str(path.parent / "weights.caffemodel")
    experiment = tmp_path / "fig3.yaml"
    experiment.write_text(yaml.safe_dump(config))
    run = run_experiment(experiment, out=tmp_path / "run", progress=False)

    rows = list(csv.DictReader((run / "report" / "fig3.csv").open()))
    assert {r["net"] for r in rows} == {"GoogLeNet", "ResNet-152"}
    assert {r["method"] for r in rows} >= {"FGS", "FGV", "HC-D-1"}
    figures = sorted((run / "report").glob("fig3_*.png"))
    assert len(figures) == 4 and all(f.stat().st_size > 10000 for f in figures)
    table = (run / "report" / "fig3.md").read_text()
    assert "| GoogLeNet | FGS |" in table and "| ResNet-152 |" in table

    # Every stored image is what the table says: the net gives it the recorded class, other than the
    # photo's, and the metrics are those of the stored image (L2 per pixel = ||eta||_2 / (H W), Fig. 3).
    crops = np.load(run / "images" / "photos.npy")[:, 16:240, 16:240]
    for net, model_yaml in (("GoogLeNet", googlenet_stand_in), ("ResNet-152", resnet_stand_in)):
        images = np.load(run / "generate" / net / "images.npy")
        records = list(csv.DictReader((run / "generate" / net / "metadata.csv").open()))  # images.npy's order
        assert len(images) == len(records) > 0
        assert sorted((r["source_index"], r["method"]) for r in records) == \
            sorted((r["source_index"], r["method"]) for r in rows if r["net"] == net)
        clf = load_model(model_yaml).classifier(model_yaml.parent / "weights.caffemodel")
        labels = json.loads((run / "generate" / net / "labels.json").read_text())
        sources = [int(r["source_index"]) for r in records]
        assert [int(r["label"]) for r in records] == [labels[s] for s in sources]
        assert (clf.classify(images) == [int(r["predicted"]) for r in records]).all()
        assert all(int(r["predicted"]) != int(r["label"]) for r in records)
        metrics = perturbation_metrics(images, crops[sources])
        np.testing.assert_allclose(metrics.l2_per_pixel, [float(r["l2_per_pixel"]) for r in records], rtol=1e-5)
        np.testing.assert_allclose(metrics.linf, [float(r["linf"]) for r in records])
        assert all((r["accepted"] == "1") == (float(r["pass_score"]) >= 0.99) for r in records)

    again = run_experiment(experiment, out=tmp_path / "run", progress=False)
    assert (again / "report" / "fig3.csv").read_text() == (run / "report" / "fig3.csv").read_text()


def test_changed_photos_are_not_mistaken_for_the_finished_run(googlenet_stand_in, photo_folder, tmp_path):
    photos = tmp_path / "photos"
    shutil.copytree(photo_folder / "n07920052", photos)
    config = {"kind": "imagenet_fig3", "name": "fig3_small", "images": str(photos), "methods": ["FGV"],
              "nets": [{"name": "GoogLeNet", "model": str(googlenet_stand_in),
                        "weights": str(googlenet_stand_in.parent / "weights.caffemodel")}]}
    experiment = tmp_path / "fig3.yaml"
    experiment.write_text(yaml.safe_dump(config))
    run_experiment(experiment, out=tmp_path / "run", progress=False)
    first = sorted(photos.iterdir())[0]
    first.write_bytes((photo_folder / "n02123045" / "n02123045_0.JPEG").read_bytes())
    with pytest.raises(OutputDirError, match="unit 'images' .* computed differently"):
        run_experiment(experiment, out=tmp_path / "run", progress=False)
