"""The ImageNet experiment YAMLs (kind imagenet_fig3 / imagenet_hp): every mistake is named before any work."""
from __future__ import annotations

import pytest
import yaml

from hotcold.pipeline.config import load_experiment
from hotcold.pipeline.imagenet_config import Fig3Experiment, HardPositiveExperiment, fig3_images, imagenet_folders


def _load(tmp_path, config: dict):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_experiment(path)


def test_builtin_imagenet_experiments_carry_the_papers_settings():
    fig3 = load_experiment("imagenet_fig3")
    assert isinstance(fig3, Fig3Experiment)
    assert [n.model for n in fig3.nets] == ["bvlc_googlenet", "resnet152"]
    assert fig3.methods == ["FGS", "FGV", "HC-D-1", "HC-D-13"] and fig3.tau == 0.9
    hp = load_experiment("imagenet_googlenet_hp")
    assert isinstance(hp, HardPositiveExperiment)
    assert (hp.select.per_class, hp.generate.methods, hp.generate.tau, hp.generate.target) == \
        (15, ["HC-D-1..20"], 0.99, None)
    assert (hp.finetune.iterations, hp.finetune.batch_size, hp.finetune.mirror) == (500000, 80, False)


@pytest.mark.parametrize("config, message", [
    ({"kind": "imagenet_fig4", "name": "x"}, "kind: must be one of mnist_table1, imagenet_fig3, imagenet_hp"),
    ({"kind": "imagenet_fig3", "name": "x", "method": ["FGS"]}, "method: unknown key"),
    ({"kind": "imagenet_fig3", "name": "x", "tau": 1.5}, r"tau: PASS threshold must be in \[0, 1\]"),
    ({"kind": "imagenet_fig3", "name": "x", "methods": ["HC-D-1000"]}, r"methods\[0\] on nets\[0\]"),
    ({"kind": "imagenet_fig3", "name": "x", "nets": [{"name": "a", "model": "lenet"}, {"name": "a", "model": "lenet"}]},
     "names must be unique"),
    ({"kind": "imagenet_fig3", "name": "x", "nets": [{"name": "a b", "model": "lenet"}]}, r"nets\[0\]"),
    ({"kind": "imagenet_fig3", "name": "x", "nets": [{"name": "a", "model": "bvlc_googlenet",
                                                      "weights": "/no/such.caffemodel"}]},
     r"nets\[0\].weights: file '/no/such.caffemodel' does not exist"),
    ({"kind": "imagenet_fig3", "name": "x", "images": "/no/such/folder"}, "images: folder"),
    ({"kind": "imagenet_hp", "name": "x", "model": "{deploy_only}"}, "has no train_test_prototxt / solver_prototxt"),
    ({"kind": "imagenet_hp", "name": "x", "generate": {"shard_images": 150, "chunk_size": 100}},
     "generate.shard_images: must be a multiple of generate.chunk_size"),
    ({"kind": "imagenet_hp", "name": "x", "data": {"size": 200}}, "data.size: 200 is smaller than"),
    ({"kind": "imagenet_hp", "name": "x", "finetune": {"batch_size": 0}}, "finetune.batch_size: must be >= 1"),
    ({"kind": "imagenet_hp", "name": "x", "generate": {"tau": -0.1}}, r"generate.tau: PASS threshold"),
    ({"kind": "imagenet_hp", "name": "x", "generate": {"max_eps": 0}},
     r"generate.max_eps: the line-search cap must be > 0"),
    ({"kind": "imagenet_hp", "name": "x", "execution": {"executor": "threads"}}, "execution"),
])
def test_bad_configs_name_the_key(tmp_path, config, message):
    from hotcold.caffe.zoo import package_data

    deploy_only = yaml.safe_load((package_data("models") / "lenet.yaml").read_text())
    deploy_only.update(train_test_prototxt=None, solver_prototxt=None,
                       deploy_prototxt=str(package_data("prototxt") / "lenet_deploy.prototxt"))
    (tmp_path / "deploy_only.yaml").write_text(yaml.safe_dump(deploy_only))
    if config.get("model") == "{deploy_only}":
        config = {**config, "model": str(tmp_path / "deploy_only.yaml")}
    with pytest.raises(ValueError, match=message):
        _load(tmp_path, config)


def test_machine_paths_come_from_the_environment(tmp_path, monkeypatch):
    for d in ("train", "val"):
        (tmp_path / d).mkdir()
    (tmp_path / "val.txt").write_text("a.JPEG 0\n")
    monkeypatch.setenv("HOTCOLD_IMAGENET_DIR", str(tmp_path))
    hp = load_experiment("imagenet_googlenet_hp")
    assert imagenet_folders(hp.data) == {"train": str(tmp_path / "train"), "val": str(tmp_path / "val"),
                                         "val_labels": str(tmp_path / "val.txt")}
    monkeypatch.delenv("HOTCOLD_IMAGENET_DIR")
    with pytest.raises(ValueError, match="set HOTCOLD_IMAGENET_DIR"):
        imagenet_folders(hp.data)
    monkeypatch.delenv("HOTCOLD_FIG3_IMAGES", raising=False)
    with pytest.raises(ValueError, match="HOTCOLD_FIG3_IMAGES"):
        fig3_images(load_experiment("imagenet_fig3"))
    monkeypatch.setenv("HOTCOLD_FIG3_IMAGES", str(tmp_path / "train"))
    assert fig3_images(load_experiment("imagenet_fig3")) == str(tmp_path / "train")
