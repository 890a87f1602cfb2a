"""The backward-from-blob patch (B_l, Sec. 4.3) on the real patched Caffe, CPU."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.caffe.runtime import import_caffe

caffe = import_caffe()

# LeNet-shaped, small: conv -> max pool -> conv -> ip -> ReLU (in place) -> ip -> Softmax.
LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.4 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
        convolution_param { num_output: 6 kernel_size: 3 weight_filler { type: "gaussian" std: 0.4 }
                            bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "conv2" top: "ip1"
        inner_product_param { num_output: 12 weight_filler { type: "gaussian" std: 0.3 }
                              bias_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "ip1" top: "ip1" }
layer { name: "ip2" type: "InnerProduct" bottom: "ip1" top: "ip2"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.3 } } }
"""
INPUT = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: %d dim: 1 dim: 12 dim: 12 } } }\n'
DEPLOY = 'name: "tiny"\nforce_backward: true\n' + INPUT + LAYERS + \
    'layer { name: "prob" type: "Softmax" bottom: "ip2" top: "prob" }\n'
LOSS = ('name: "tiny"\nforce_backward: true\n' + INPUT + LAYERS +
        'layer { name: "label" type: "Input" top: "label" input_param { shape { dim: %d } } }\n'
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip2" bottom: "label" top: "loss" }\n')


def make_net(text: str, tmp_path, weights=None):
    path = tmp_path / f"net_{abs(hash(text))}.prototxt"
    path.write_text(text)
    caffe.set_mode_cpu()
    caffe.set_random_seed(1701)
    net = caffe.Net(str(path), caffe.TEST)
    if weights is not None:
        net.copy_from(str(weights))
    return net


@pytest.fixture()
def x():
    return np.random.default_rng(0).uniform(0, 1, size=(2, 1, 12, 12)).astype(np.float32)


@pytest.mark.parametrize("blob", ["conv1", "pool1", "conv2", "ip1", "ip2"])
def test_backward_from_blob_matches_numerical_gradient(blob, x, tmp_path):
    """B_l(w) = d(w . blob(x))/dx, checked by central differences.

    Caffe computes in float32. The net is piecewise linear, so a central
    difference with step h is exact unless a ReLU / max-pool switch lies within
    h; its float32 rounding error is about 1e-6 * |w . blob| / h. With h = 1e-2
    that is ~1e-4, well inside the tolerance below. Coordinates with a switch
    within h are found by their one-sided differences disagreeing; they are
    left out, and must be few.
    """
    net = make_net(DEPLOY % 2, tmp_path)
    net.blobs["data"].data[...] = x
    net.forward()
    w = np.random.default_rng(1).normal(size=net.blobs[blob].data.shape).astype(np.float32)
    grad = net.backward(**{blob: w})["data"].copy()

    # Every +-h perturbation of every input coordinate of both images, one batched forward.
    h = 1e-2
    n_coords = x[0].size
    probe = make_net(DEPLOY % (2 * 2 * n_coords), tmp_path, weights=_save(net, tmp_path))
    batch = np.repeat(x[:, None], 2 * n_coords, axis=1).reshape(2, 2 * n_coords, -1)
    for i in range(2):
        batch[i, np.arange(n_coords), np.arange(n_coords)] += h
        batch[i, n_coords + np.arange(n_coords), np.arange(n_coords)] -= h
    probe.blobs["data"].data[...] = batch.reshape(probe.blobs["data"].data.shape)
    probe.forward()
    f = probe.blobs[blob].data.reshape(2, 2 * n_coords, -1).astype(np.float64)
    f = (f * w.reshape(2, 1, -1)).sum(axis=2)
    f0 = (net.blobs[blob].data.reshape(2, -1).astype(np.float64) * w.reshape(2, -1)).sum(axis=1)
    forward = (f[:, :n_coords] - f0[:, None]) / h
    backward = (f0[:, None] - f[:, n_coords:]) / h
    smooth = (np.abs(forward - backward) < 1e-3).reshape(x.shape)
    numerical = ((forward + backward) / 2).reshape(x.shape)
    assert smooth.mean() > 0.9
    np.testing.assert_allclose(grad[smooth], numerical[smooth], rtol=1e-2, atol=2e-3)
    assert np.abs(grad).max() > 1e-2  # a real signal, not two zeros


def _save(net, tmp_path):
    path = tmp_path / "tiny.caffemodel"
    net.save(str(path))
    return path


def test_backward_from_logits_equals_softmax_with_loss_gradient(x, tmp_path):
    deploy = make_net(DEPLOY % 2, tmp_path)
    loss = make_net(LOSS % (2, 2), tmp_path, weights=_save(deploy, tmp_path))
    labels = np.array([3, 1])
    deploy.blobs["data"].data[...] = x
    deploy.forward()
    h = deploy.blobs["ip2"].data.astype(np.float64)
    p = np.exp(h - h.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    seed = p - np.eye(5)[labels]
    grad_deploy = deploy.backward(ip2=seed.astype(np.float32))["data"].copy()

    loss.blobs["data"].data[...] = x
    loss.blobs["label"].data[...] = labels
    loss.forward()
    grad_loss = loss.backward()["data"].copy()
    # SoftmaxWithLoss normalizes by the batch size.
    np.testing.assert_allclose(grad_deploy / len(labels), grad_loss, rtol=1e-5, atol=1e-7)


def test_layers_above_the_seeded_blob_do_not_run(x, tmp_path):
    net = make_net(DEPLOY % 2, tmp_path)
    net.blobs["data"].data[...] = x
    net.forward()
    net.blobs["ip2"].diff[...] = 12345.0
    net.blobs["prob"].diff[...] = 6789.0
    net.backward(ip1=np.ones(net.blobs["ip1"].data.shape, np.float32))
    assert np.all(net.blobs["ip2"].diff == 12345.0)
    assert np.all(net.blobs["prob"].diff == 6789.0)


def test_stock_backward_from_outputs_unchanged(x, tmp_path):
    deploy = make_net(DEPLOY % 2, tmp_path)
    deploy.blobs["data"].data[...] = x
    deploy.forward()
    d_prob = np.random.default_rng(2).normal(size=(2, 5)).astype(np.float32)
    from_outputs = deploy.backward(prob=d_prob)["data"].copy()
    # The same through the layer indices that stock pycaffe has always used.
    deploy.blobs["prob"].diff[...] = d_prob
    deploy._backward(len(deploy.layers) - 1, 0)
    np.testing.assert_array_equal(from_outputs, deploy.blobs["data"].diff)
    # start= / end= by layer name still work, and so does a loss net's plain backward().
    partial = deploy.backward(start="ip2", end="ip1", diffs=["ip1"])
    assert "ip1" in partial
    loss = make_net(LOSS % (2, 2), tmp_path)
    loss.blobs["data"].data[...] = x
    loss.blobs["label"].data[...] = [0, 4]
    loss.forward()
    assert np.abs(loss.backward()["data"]).max() > 0


def test_unknown_blob_name_raises_and_lists_valid_names(x, tmp_path):
    net = make_net(DEPLOY % 2, tmp_path)
    net.forward()
    with pytest.raises(KeyError, match=r"valid blob names: \['data', 'conv1'"):
        net.backward(conv9=np.zeros((2, 1), np.float32))
    with pytest.raises(KeyError, match="no blob named 'conv9' in net 'tiny'; valid blob names: data, conv1, pool1"):
        net._backward_from_blob("conv9")
    with pytest.raises(KeyError, match="no blob named 'conv9'.*valid blob names: data, conv1"):
        net._top_producer_of_blob("conv9")
    # The process is still alive and the net still works.
    assert net.forward()["prob"].shape == (2, 5)


def test_seeds_at_two_depths_that_would_clobber_each_other_are_rejected(tmp_path):
    net = make_net(DEPLOY % 2, tmp_path)
    net.forward()
    with pytest.raises(ValueError, match="consumes blob 'pool1'"):
        net.backward(pool1=np.ones(net.blobs["pool1"].data.shape, np.float32),
                     ip1=np.ones(net.blobs["ip1"].data.shape, np.float32))
    with pytest.raises(ValueError, match="either start= or diffs"):
        net.backward(start="ip2", ip1=np.ones(net.blobs["ip1"].data.shape, np.float32))


def test_top_producer_follows_in_place_layers(tmp_path):
    net = make_net(DEPLOY % 2, tmp_path)
    names = list(net._layer_names)
    assert names[net._top_producer_of_blob("ip1")] == "relu1"
    assert names[net._top_producer_of_blob("data")] == "data"
