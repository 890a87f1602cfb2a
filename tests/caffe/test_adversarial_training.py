"""Goodfellow et al.'s adversarial objective inside Caffe's solver step (Table 1's "Goodfellow*" row, Sec. 5.2).

One real training step of LeNet with the objective, checked against a direct
NumPy computation of alpha grad J(x) + (1 - alpha) grad J(x + eps sign(grad_x J))
at the last layer; exact resume with the objective; bad settings.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hotcold.caffe.adversarial_training import AdversarialObjective
from hotcold.caffe.runtime import import_caffe
from hotcold.caffe.solver import SolverSettings
from hotcold.caffe.train import train
from hotcold.caffe.zoo import load_model

from .test_train import max_difference, weights_of

LENET = load_model("lenet")
BATCH = 64
BASE_LR, WEIGHT_DECAY = 0.01, 0.0005  # prototxt/lenet_solver.prototxt


def _deploy_activations(weights: Path, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ip1 after ReLU, softmax probabilities) of a deploy LeNet."""
    caffe = import_caffe()
    net = caffe.Net(str(LENET.deploy_prototxt), str(weights), caffe.TEST)
    net.blobs["data"].reshape(len(pixels), 1, 28, 28)
    net.reshape()
    net.blobs["data"].data[...] = pixels[:, None] / 256.0
    net.forward()
    logits = net.blobs["ip2"].data.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    return net.blobs["ip1"].data.astype(np.float64).copy(), probs


def _loss_gradient_ip2(ip1: np.ndarray, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d mean(-log p_y) / d W_ip2 = (P - Y)^T h / B: the direct computation."""
    onehot = np.eye(10)[labels]
    return (probs - onehot).T @ ip1 / len(labels)


def test_one_step_applies_the_gradient_of_the_adversarial_objective(mnist, mnist_lmdbs, lenet_weights, tmp_path):
    alpha, eps = 0.3, 0.2  # eps * 255 = 51 pixel levels: x_adv is a uint8 image again
    result = train(LENET, tmp_path / "adv", SolverSettings(seed=0, max_iter=1, snapshot_every=0),
                   train_lmdb=mnist_lmdbs["train"], test_lmdb=mnist_lmdbs["test"], init_weights=lenet_weights,
                   objective=AdversarialObjective(alpha=alpha, eps=eps))
    x = mnist.train_images[:BATCH].astype(np.float64)  # the LMDB's first batch, in order
    y = mnist.train_labels[:BATCH]
    ip1, probs = _deploy_activations(lenet_weights, x)
    # grad_x J through the deploy net: sign of the input gradient of the mean softmax loss.
    caffe = import_caffe()
    net = caffe.Net(str(LENET.deploy_prototxt), str(lenet_weights), caffe.TEST)
    net.blobs["data"].reshape(BATCH, 1, 28, 28)
    net.reshape()
    net.blobs["data"].data[...] = x[:, None] / 256.0
    net.forward()
    net.blobs["ip2"].diff[...] = (probs - np.eye(10)[y]) / BATCH
    net._backward_from_blob("ip2")
    grad_x = net.blobs["data"].diff[:, 0].astype(np.float64)
    x_adv = np.clip(x + 51 * np.sign(grad_x), 0, 255)
    assert np.abs(x_adv - x).max() == 51
    ip1_adv, probs_adv = _deploy_activations(lenet_weights, x_adv)
    expected = alpha * _loss_gradient_ip2(ip1, probs, y) + (1 - alpha) * _loss_gradient_ip2(ip1_adv, probs_adv, y)
    clean_only = _loss_gradient_ip2(ip1, probs, y)
    # Caffe's first SGD step (no momentum history yet): W' = W - lr (g + wd W).
    w_old = weights_of(lenet_weights)["ip2"][0].reshape(10, 500).astype(np.float64)
    w_new = weights_of(result.weights)["ip2"][0].reshape(10, 500).astype(np.float64)
    applied = (w_old - w_new) / BASE_LR - WEIGHT_DECAY * w_old
    scale = np.abs(expected).max()
    np.testing.assert_allclose(applied, expected, rtol=0, atol=2e-3 * scale)
    assert np.abs(applied - clean_only).max() > 0.05 * scale, "the adversarial half must change the step"
    record = json.loads((tmp_path / "adv" / "train.json").read_text())
    assert record["settings"]["objective"] == {"name": "goodfellow", "alpha": alpha, "eps": eps,
                                               "input_scale": 1 / 256}
    assert np.isfinite(record["final_loss"])


def test_interrupted_adversarial_training_resumes_to_the_same_weights(mnist_lmdbs, lenet_weights, tmp_path):
    objective = AdversarialObjective()
    kwargs = dict(train_lmdb=mnist_lmdbs["train"], test_lmdb=mnist_lmdbs["test"], init_weights=lenet_weights,
                  objective=objective)
    whole = train(LENET, tmp_path / "whole", SolverSettings(seed=2, max_iter=40, snapshot_every=20), **kwargs)
    train(LENET, tmp_path / "cut", SolverSettings(seed=2, max_iter=20, snapshot_every=20), **kwargs)
    resumed = train(LENET, tmp_path / "cut", SolverSettings(seed=2, max_iter=40, snapshot_every=20), **kwargs)
    assert resumed.resumed
    assert max_difference(whole.weights, resumed.weights) == 0.0
    with pytest.raises(ValueError, match=r"objective: .*there"):
        train(LENET, tmp_path / "cut", SolverSettings(seed=2, max_iter=60, snapshot_every=20),
              **{**kwargs, "objective": AdversarialObjective(eps=0.1)})


@pytest.mark.parametrize("kwargs, message", [
    ({"alpha": 1.5}, r"alpha is out of range, got 1.5 \(Goodfellow et al. use 0.5\)"),
    ({"eps": 0}, r"eps is out of range, got 0"),
    ({"eps": float("nan")}, r"eps is out of range"),
    ({"input_scale": -1}, r"input_scale is out of range"),
    ({"alpha": True}, r"alpha is out of range"),
])
def test_bad_objective_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialObjective(**kwargs)
