"""Stand-ins for the ImageNet nets: the real GoogLeNet and ResNet-152 architectures (hotcold.caffe.netgen, the
published layer and blob names) at reduced width, 4 classes and random weights, built once per test session.

The Model Zoo weights cannot be downloaded here; these run every ImageNet code path on the same layers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from google.protobuf import text_format

CLASSES = 4


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if "tests/imagenet/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.imagenet)


def _stand_in(root: Path, arch: str, width: float, seed: int) -> Path:
    """deploy / train_val / solver prototxts, random weights and a model YAML; returns the YAML's path."""
    from hotcold.caffe import netgen
    from hotcold.caffe.runtime import import_caffe

    caffe = import_caffe()
    make = {"googlenet": netgen.googlenet, "resnet152": netgen.resnet152}[arch]
    root.mkdir(parents=True)
    for phase in ("deploy", "train_val"):
        net = make(phase, num_classes=CLASSES, width=width, train_batch=4, test_batch=4)
        (root / f"{phase}.prototxt").write_text(text_format.MessageToString(net))
    solver = netgen.quick_solver()
    solver.base_lr = 0.001
    (root / "solver.prototxt").write_text(text_format.MessageToString(solver))
    caffe.set_random_seed(seed)
    net = caffe.Net(str(root / "deploy.prototxt"), caffe.TEST)
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type == "BatchNorm":  # moving averages of a net that has seen data: mean 0, variance 1
            layer.blobs[0].data[...], layer.blobs[1].data[...], layer.blobs[2].data[...] = 0, 1, 1
        if layer.type in ("Convolution", "InnerProduct") and len(layer.blobs) > 1:
            layer.blobs[1].data[...] = 0  # BVLC's 0.2 bias fill would swamp random features: keep them input-driven
        if layer.type == "Scale" and name.endswith("branch2c"):
            layer.blobs[0].data[...] = 0.1  # small residual branches keep 50 random blocks from exploding
    _unit_variance(net, caffe)
    _save_with_training_layers(net, root, caffe)
    mean: list | str = [104.0, 117.0, 123.0]
    if arch == "resnet152":  # a per-pixel mean image, as the release's ResNet_mean.binaryproto
        image = np.broadcast_to(np.array([104.0, 117.0, 123.0])[:, None, None], (3, 224, 224))
        image = image + np.random.default_rng(seed).normal(0, 3, (3, 224, 224))
        blob = caffe.io.array_to_blobproto(image[None].astype(np.float32))
        (root / "mean.binaryproto").write_bytes(blob.SerializeToString())
        mean = str(root / "mean.binaryproto")
    spec = {"name": arch, "train_test_prototxt": str(root / "train_val.prototxt"),
            "deploy_prototxt": str(root / "deploy.prototxt"), "solver_prototxt": str(root / "solver.prototxt"),
            "logits_blob": "loss3/classifier" if arch == "googlenet" else "fc1000", "input_shape": [3, 224, 224],
            "input_scale": 1.0, "mean": mean, "channel_swap": [2, 1, 0], "num_classes": CLASSES,
            "weights": str(root / "weights.caffemodel")}
    path = root / "model.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _unit_variance(net, caffe) -> None:
    """Scale every convolution / inner product so that its output has unit variance on the sample photos
    (LSUV-style), so that random deep features follow the input rather than fading to a constant."""
    import cv2
    import skimage.data

    photos = [cv2.resize(getattr(skimage.data, n)(), (224, 224)) for n in ("chelsea", "coffee", "rocket", "astronaut")]
    x = np.stack(photos)[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) - np.array([104, 117, 123])[:, None, None]
    net.blobs["data"].reshape(*x.shape)
    net.blobs["data"].data[...] = x
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type not in ("Convolution", "InnerProduct"):
            continue
        top = net.top_names[name][0]
        net.forward(end=name)
        std = float(net.blobs[top].data.std())
        if std > 0:
            layer.blobs[0].data[...] /= std


def _save_with_training_layers(deploy, root: Path, caffe) -> None:
    """Save ``deploy``'s weights plus randomly initialised training-only layers (GoogLeNet's auxiliary
    classifiers), as the Model Zoo's caffemodels, which were saved from the training net, hold them."""
    from hotcold.caffe.runtime import caffe_pb2

    pb2 = caffe_pb2()
    net = text_format.Parse((root / "train_val.prototxt").read_text(), pb2.NetParameter())
    layers = [layer for layer in net.layer if not any(r.phase == pb2.TEST for r in layer.include)]
    data = layers[0]
    assert data.type == "Data"
    data.Clear()
    data.name, data.type = "data", "Input"
    data.top.extend(["data", "label"])
    data.input_param.shape.add().dim.extend([1, 3, 224, 224])
    data.input_param.shape.add().dim.extend([1])
    del net.layer[:]
    net.layer.extend(layers)
    (root / "train_input.prototxt").write_text(text_format.MessageToString(net))
    full = caffe.Net(str(root / "train_input.prototxt"), caffe.TRAIN)
    for name, blobs in deploy.params.items():  # every layer's blobs, BatchNorm statistics included
        for mine, theirs in zip(full.params[name], blobs):
            mine.data[...] = theirs.data
    full.save(str(root / "weights.caffemodel"))


@pytest.fixture(scope="session")
def googlenet_stand_in(tmp_path_factory) -> Path:
    """GoogLeNet at width 1/8 with 4 classes: its model YAML (weights beside it)."""
    return _stand_in(tmp_path_factory.mktemp("nets") / "googlenet", "googlenet", 0.125, seed=1)


@pytest.fixture(scope="session")
def resnet_stand_in(tmp_path_factory) -> Path:
    """ResNet-152 at width 1/16 with 4 classes and a per-pixel mean image: its model YAML."""
    return _stand_in(tmp_path_factory.mktemp("nets") / "resnet152", "resnet152", 0.0625, seed=2)
