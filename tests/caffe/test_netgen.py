"""The ImageNet nets generated with caffe.net_spec (paper Sec. 4, Fig. 3; Sec. 5.3), checked on real pycaffe.

Golden values and their sources:

* learnable parameters 6,998,552 (BVLC GoogLeNet deploy) and 60,192,808
  (ResNet-152 deploy: conv and fc weights and biases, Scale gamma and beta;
  not BatchNorm's mean / variance / factor);
* layer type counts of the published prototxts;
* ``*_DIGEST``: SHA-256 of the published files' layers as :func:`structure_digest`
  reduces them, computed from BVLC/caffe ``models/bvlc_googlenet/{deploy,train_val}.prototxt``
  at commit 44da39f662a24de746fa83b92bd670fe41b3a7da and KaimingHe/deep-residual-networks
  ``prototxt/ResNet-152-deploy.prototxt`` at 872cc54494de59887bb3568d493dfb8e24073aac.
  Equal digests mean the same layers in the same order, with the same names,
  blobs and settings (for GoogLeNet also the fillers and lr / decay multipliers).
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from hotcold.caffe.netgen import build, googlenet, quick_solver, resnet152
from hotcold.caffe.prototxt import parse_prototxt
from hotcold.caffe.runtime import caffe_pb2, import_caffe
from hotcold.caffe.zoo import load_model, package_data
from hotcold.cli import main

GOOGLENET_DEPLOY_DIGEST = "4f78b7b38eb650020ea0d18923d2bfb067eac64b3a93e747238ec8eb4bb7a9f9"
GOOGLENET_TRAIN_VAL_DIGEST = "448f0ee0b125c5e213f8dc1c15eaac49852ee36102e2d0431fe128eb715fda5d"
RESNET152_DEPLOY_STRUCTURE_DIGEST = "2c5518040b0515e2fb9f4b88c23c0086692e82579b42e27f84b96bc326c487f4"


def structure_digest(net, *, keep_params: bool) -> str:
    """SHA-256 over the layers' binary protobuf, without what a published file may set otherwise.

    Dropped: ``Input`` layers (the batch differs; Kaiming He's file declares
    its input with legacy ``input:`` fields), the ``Data`` sources (hotcold's
    placeholders), the ``std`` of BVLC's deploy fillers (xavier ignores it)
    and, unless ``keep_params``, ``param`` multipliers and fillers (the
    ResNet release has none).
    """
    h = hashlib.sha256()
    for layer in net.layer:
        if layer.type == "Input":
            continue
        layer = caffe_pb2().LayerParameter.FromString(layer.SerializeToString())
        layer.data_param.ClearField("source")
        if keep_params:
            layer.convolution_param.weight_filler.ClearField("std")
        else:
            layer.ClearField("param")
            for field in (layer.convolution_param, layer.inner_product_param):
                field.ClearField("weight_filler")
                field.ClearField("bias_filler")
        h.update(layer.SerializeToString(deterministic=True))
    return h.hexdigest()


def shipped(name: str):
    return parse_prototxt(package_data("prototxt") / name)


def learnable_count(net) -> int:
    """Learnable parameters of a pycaffe Net; BatchNorm's statistics are not learned."""
    types = dict(zip(net._layer_names, (layer.type for layer in net.layers)))
    return sum(blob.data.size for name, blobs in net.params.items() if types[name] != "BatchNorm" for blob in blobs)


@pytest.fixture(scope="module")
def deploy_nets():
    """The shipped full-size deploy nets, built once (ResNet-152: ~0.4 GB, about a second), batch 1."""
    caffe = import_caffe()
    return {name: caffe.Net(str(package_data("prototxt") / f"{name}_deploy.prototxt"), caffe.TEST)
            for name in ("bvlc_googlenet", "resnet152")}


# ---------------------------------------------------------------- the shipped files

def test_shipped_prototxts_are_the_generators_output_byte_for_byte() -> None:
    assert build.stale(package_data("prototxt")) == []
    assert build.render() == build.render()


def test_models_build_writes_the_files_and_check_finds_a_changed_one(tmp_path, capsys) -> None:
    assert main(["models", "build", "--out", str(tmp_path)]) == 0
    for name in build.FILES:
        assert (tmp_path / name).read_bytes() == (package_data("prototxt") / name).read_bytes()
    assert main(["models", "build", "--check", "--out", str(tmp_path)]) == 0
    path = tmp_path / "resnet152_deploy.prototxt"
    path.write_text(path.read_text().replace('name: "res4b35"', 'name: "res4b36"'))
    (tmp_path / "bvlc_googlenet_quick_solver.prototxt").unlink()
    assert main(["models", "build", "--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bvlc_googlenet_quick_solver.prototxt, resnet152_deploy.prototxt" in err and "hotcold models build" in err


def test_models_build_check_as_a_command() -> None:
    done = subprocess.run([sys.executable, "-m", "hotcold.cli", "models", "build", "--check"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0 and f"{len(build.FILES)} prototxts in " in done.stdout, done.stderr


@pytest.mark.parametrize("name, keep_params, digest", [
    ("bvlc_googlenet_deploy.prototxt", True, GOOGLENET_DEPLOY_DIGEST),
    ("bvlc_googlenet_train_val.prototxt", True, GOOGLENET_TRAIN_VAL_DIGEST),
    ("resnet152_deploy.prototxt", False, RESNET152_DEPLOY_STRUCTURE_DIGEST),
])
def test_layers_are_the_published_ones(name: str, keep_params: bool, digest: str) -> None:
    assert structure_digest(shipped(name), keep_params=keep_params) == digest


@pytest.mark.parametrize("name", ["bvlc_googlenet", "resnet152"])
def test_deploy_backpropagates_to_a_1x3x224x224_input(name: str) -> None:
    net = shipped(f"{name}_deploy.prototxt")
    assert net.force_backward
    assert net.layer[0].type == "Input" and list(net.layer[0].input_param.shape[0].dim) == [1, 3, 224, 224]
    assert not shipped(f"{name}_train_val.prototxt").force_backward


@pytest.mark.parametrize("name, parameters, types, shapes", [
    ("bvlc_googlenet", 6_998_552, {"Convolution": 57, "Concat": 9, "InnerProduct": 1, "Softmax": 1},
     {"conv1/7x7_s2": (64, 112, 112), "inception_3a/output": (256, 28, 28), "inception_4e/output": (832, 14, 14),
      "inception_5b/output": (1024, 7, 7), "pool5/7x7_s1": (1024, 1, 1), "loss3/classifier": (1000,),
      "prob": (1000,)}),
    ("resnet152", 60_192_808, {"Convolution": 155, "BatchNorm": 155, "Scale": 155, "Eltwise": 50,
                               "InnerProduct": 1, "Softmax": 1},
     {"conv1": (64, 112, 112), "pool1": (64, 56, 56), "res2c": (256, 56, 56), "res3b7": (512, 28, 28),
      "res4b35": (1024, 14, 14), "res5c": (2048, 7, 7), "pool5": (2048, 1, 1), "fc1000": (1000,),
      "prob": (1000,)}),
])
def test_full_size_deploy_counts_and_shapes(deploy_nets, name, parameters, types, shapes) -> None:
    net = deploy_nets[name]
    assert learnable_count(net) == parameters
    counts = Counter(layer.type for layer in net.layers)
    assert {t: counts[t] for t in types} == types
    assert {blob: net.blobs[blob].data.shape[1:] for blob in shapes} == shapes


def test_resnet152_names_as_released(deploy_nets) -> None:
    net = deploy_nets["resnet152"]
    blocks = (["2a", "2b", "2c", "3a"] + [f"3b{i}" for i in range(1, 8)] + ["4a"] + [f"4b{i}" for i in range(1, 36)]
              + ["5a", "5b", "5c"])
    eltwise = [name for name, layer in zip(net._layer_names, net.layers) if layer.type == "Eltwise"]
    assert eltwise == [f"res{b}" for b in blocks]
    layers = set(net._layer_names)
    for b in blocks:
        for branch in ("2a", "2b", "2c") + (("1",) if b.endswith("a") else ()):
            assert {f"res{b}_branch{branch}", f"bn{b}_branch{branch}", f"scale{b}_branch{branch}"} <= layers
        assert f"res{b}_relu" in layers
    assert {"conv1", "bn_conv1", "scale_conv1", "conv1_relu", "pool1", "pool5", "fc1000", "prob"} <= layers
    assert "res2b_branch1" not in layers and "res4b36" not in layers


def test_googlenet_train_val_losses_and_data_layers() -> None:
    net = shipped("bvlc_googlenet_train_val.prototxt")
    pb2 = caffe_pb2()
    data = [layer for layer in net.layer if layer.type == "Data"]
    assert [(d.data_param.source, d.data_param.batch_size, d.transform_param.mirror, d.include[0].phase)
            for d in data] == [("TRAIN_LMDB", 32, True, pb2.TRAIN), ("TEST_LMDB", 50, False, pb2.TEST)]
    assert all(d.transform_param.crop_size == 224 and list(d.transform_param.mean_value) == [104, 117, 123]
               for d in data)
    losses = {layer.name: (layer.top[0], layer.loss_weight[0])
              for layer in net.layer if layer.type == "SoftmaxWithLoss"}
    assert losses == {"loss1/loss": ("loss1/loss1", pytest.approx(0.3)),
                      "loss2/loss": ("loss2/loss2", pytest.approx(0.3)), "loss3/loss3": ("loss3/loss3", 1.0)}
    accuracy = {layer.name: layer.accuracy_param.top_k for layer in net.layer if layer.type == "Accuracy"}
    assert accuracy == {f"loss{i}/top-{k}": k for i in (1, 2, 3) for k in (1, 5)}


def test_quick_solver_is_bvlcs_with_hotcolds_placeholders() -> None:
    solver = quick_solver()
    assert (solver.net, solver.snapshot_prefix) == ("NET_PROTOTXT", "SNAPSHOT_PREFIX")
    assert (solver.base_lr, solver.lr_policy, solver.power, solver.momentum) == (pytest.approx(0.01), "poly", 0.5,
                                                                                 pytest.approx(0.9))
    assert solver.weight_decay == pytest.approx(2e-4)
    assert (list(solver.test_iter), solver.test_interval, solver.display, solver.average_loss, solver.max_iter,
            solver.snapshot, solver.test_initialization) == ([1000], 4000, 40, 40, 2_400_000, 40_000, False)


def test_resnet152_train_val_batch_norm_modes() -> None:
    def global_stats(net) -> set:
        return {(layer.batch_norm_param.HasField("use_global_stats"), layer.batch_norm_param.use_global_stats)
                for layer in net.layer if layer.type == "BatchNorm"}

    assert global_stats(shipped("resnet152_train_val.prototxt")) == {(False, False)}  # Caffe: batch stats in TRAIN
    assert global_stats(resnet152("train_val", freeze_batch_norm=True)) == {(True, True)}
    assert global_stats(shipped("resnet152_deploy.prototxt")) == {(True, True)}
    bn = next(layer for layer in shipped("resnet152_train_val.prototxt").layer if layer.type == "BatchNorm")
    assert [p.lr_mult for p in bn.param] == [0, 0, 0]


def test_model_zoo_entries_use_the_shipped_prototxts(tmp_path) -> None:
    from hotcold.caffe.lmdb_io import write_datum_lmdb
    from hotcold.caffe.prototxt import load_deploy
    from hotcold.caffe.solver import SolverSettings, render_solver

    for name, logits in (("bvlc_googlenet", "loss3/classifier"), ("resnet152", "fc1000")):
        spec = load_model(name)
        deploy = load_deploy(spec.deploy_prototxt)
        assert (deploy.input_blob, deploy.input_shape) == ("data", (1, 3, 224, 224))
        assert deploy.check_blob(spec.logits_blob) == logits
        assert spec.train_test_prototxt.name == f"{name}_train_val.prototxt"
    lmdb = write_datum_lmdb(tmp_path / "tiny.lmdb", np.zeros((2, 256, 256, 3), np.uint8), np.array([0, 1]))
    rendered = render_solver("bvlc_googlenet", tmp_path / "run", SolverSettings(seed=0, max_iter=10),
                             train_lmdb=lmdb, test_lmdb=lmdb)
    assert [layer.data_param.source for layer in rendered.net.layer if layer.type == "Data"] == [str(lmdb)] * 2
    assert rendered.solver.lr_policy == "poly" and rendered.solver.max_iter == 10


# ---------------------------------------------------------------- small stand-ins of the real architectures

def standin_weights(deploy, path, seed: int) -> None:
    """Random weights from the prototxt's fillers, with BatchNorm statistics that keep activations finite."""
    caffe = import_caffe()
    caffe.set_random_seed(seed)
    net = caffe.Net(str(deploy), caffe.TEST)
    for name, layer in zip(net._layer_names, net.layers):
        if layer.type == "BatchNorm":
            mean, var, factor = net.params[name]
            mean.data[...], var.data[...], factor.data[...] = 0.0, 1.0, 1.0
        elif layer.type == "Scale" and name.endswith("_branch2c"):
            net.params[name][0].data[...] = 0.1  # small residuals, as zero-init residual training starts
    net.save(str(path))


@pytest.mark.parametrize("make, image_size, probe, channels", [
    (googlenet, 224, "pool5/7x7_s1", 64),
    (googlenet, 96, "inception_4e/output", 52),
    (googlenet, 47, "pool5/7x7_s1", 64),
    (resnet152, 224, "pool5", 128),
    (resnet152, 64, "res4b35", 64),
])
def test_small_standins_classify_and_backpropagate(tmp_path, make, image_size, probe, channels) -> None:
    """Width 1/16, 10 classes: the real layer graph, cheap enough for CI; B_l from a named blob (Sec. 4.3)."""
    from google.protobuf import text_format

    from hotcold.caffe.classifier import CaffeClassifier

    deploy = tmp_path / "deploy.prototxt"
    deploy.write_text(text_format.MessageToString(make("deploy", width=1 / 16, num_classes=10, batch=2,
                                                       image_size=image_size)))
    weights = tmp_path / "standin.caffemodel"
    standin_weights(deploy, weights, seed=3)
    logits = "loss3/classifier" if make is googlenet else "fc1000"
    clf = CaffeClassifier(deploy, weights, logits_blob=logits, mean=(104.0, 117.0, 123.0), channel_swap=(2, 1, 0))
    assert clf.num_classes == 10 and clf.net.blobs[probe].data.shape[1] == channels
    images = np.random.default_rng(0).integers(0, 256, (3, image_size, image_size, 3), dtype=np.uint8)
    scores = clf.predict(images)
    assert scores.shape == (3, 10) and np.isfinite(scores).all()
    seed = np.random.default_rng(1).standard_normal((3, *clf.net.blobs[probe].data.shape[1:])).astype(np.float32)
    grad = clf.backprop(images, probe, seed)
    assert grad.shape == images.shape and np.isfinite(grad).all() and np.abs(grad).max() > 0


@pytest.mark.parametrize("make, losses, accuracies", [
    (googlenet, {"loss1/loss1", "loss2/loss2", "loss3/loss3"},
     {f"loss{i}/top-{k}" for i in (1, 2, 3) for k in (1, 5)}),
    (resnet152, {"loss"}, {"top-1", "top-5"}),
])
def test_small_train_val_runs_in_both_phases(tmp_path, make, losses, accuracies) -> None:
    """The train_val graph as Caffe runs it: Data layers on a real LMDB, the losses, the TEST accuracies."""
    from google.protobuf import text_format

    from hotcold.caffe.lmdb_io import write_datum_lmdb

    caffe = import_caffe()
    rng = np.random.default_rng(5)
    lmdb = write_datum_lmdb(tmp_path / "tiny.lmdb", rng.integers(0, 256, (8, 72, 72, 3), dtype=np.uint8),
                            rng.integers(0, 10, 8))
    net = make("train_val", width=1 / 16, num_classes=10, image_size=64, train_batch=4, test_batch=4)
    for layer in net.layer:
        if layer.type == "Data":
            layer.data_param.source = str(lmdb)
    path = tmp_path / "train_val.prototxt"
    path.write_text(text_format.MessageToString(net))
    caffe.set_random_seed(0)
    train = caffe.Net(str(path), caffe.TRAIN)
    out = train.forward()  # BatchNorm: batch statistics, which also fill the moving averages TEST uses
    assert set(out) == losses and all(np.isfinite(v).all() for v in out.values())
    test = caffe.Net(str(path), caffe.TEST)
    test.share_with(train)  # as Caffe's solver shares the training weights with its test net
    out = test.forward()
    assert set(out) == losses | accuracies and all(np.isfinite(v).all() for v in out.values())


def test_width_and_classes_scale_the_graph_not_its_names() -> None:
    full, small = googlenet("train_val"), googlenet("train_val", width=0.25, num_classes=7)
    assert [layer.name for layer in full.layer] == [layer.name for layer in small.layer]
    outputs = {layer.name: layer.convolution_param.num_output or layer.inner_product_param.num_output
               for layer in small.layer if layer.type in ("Convolution", "InnerProduct")}
    assert outputs["conv1/7x7_s2"] == 16 and outputs["inception_5b/1x1"] == 96 and outputs["loss1/fc"] == 256
    assert outputs["loss1/classifier"] == outputs["loss3/classifier"] == 7
    assert min(outputs.values()) >= 1 and googlenet(width=1e-3).layer[1].convolution_param.num_output == 1


@pytest.mark.parametrize("make, kwargs, error, message", [
    (googlenet, {"phase": "train"}, ValueError, "phase must be one of"),
    (googlenet, {"width": 0}, ValueError, "width must be a positive number"),
    (resnet152, {"width": float("nan")}, ValueError, "width must be a positive number"),
    (googlenet, {"num_classes": 1}, ValueError, "num_classes must be >= 2"),
    (resnet152, {"batch": 0}, ValueError, "batch must be >= 1"),
    (resnet152, {"batch": True}, TypeError, "batch must be an int"),
    (googlenet, {"image_size": 46}, ValueError, "image_size must be >= 47"),
    (resnet152, {"image_size": 31}, ValueError, "image_size must be >= 32"),
    (resnet152, {"image_size": 224.0}, TypeError, "image_size must be an int"),
    (resnet152, {"freeze_batch_norm": True}, ValueError, "freeze_batch_norm applies to phase='train_val'"),
])
def test_bad_generator_options(make, kwargs, error, message) -> None:
    with pytest.raises(error, match=message):
        make(**kwargs)
