"""Adversarial training with the objective of Goodfellow et al. (2015), Table 1's "Goodfellow*" row (Sec. 5.2).

Sec. 5.2 compares fine-tuning on generated images with "the results reported
in [8] using a modified adversarial-enhanced training objective", which can
"take advantage of a changing adversarial objective during training":

    J~(theta, x, y) = alpha J(theta, x, y) + (1 - alpha) J(theta, x + eps sign(grad_x J(theta, x, y)), y)

with alpha = 0.5. :class:`AdversarialObjective` implements it inside Caffe's
own solver step, for every batch with the current weights:

1. Caffe's ``Solver::Step`` clears the parameter diffs and runs forward and
   backward on the clean batch x: the diffs hold grad_theta J(theta, x, y), and
   (the net is rendered with ``force_backward``) the input blob's diff holds
   grad_x J(theta, x, y).
2. In the ``on_gradients_ready`` callback: keep those diffs, set the input blob to
   x_adv = clip(x + eps sign(grad_x J), lo, hi), clear the diffs, forward from the
   first layer after the data layer (same labels) and backward: the diffs now
   hold grad_theta J(theta, x_adv, y), with x_adv a constant as in Goodfellow et al.
3. The diffs become alpha grad J(x) + (1 - alpha) grad J(x_adv): the gradient of
   J~. Caffe then applies its update (learning rate, momentum, weight decay)
   to that, exactly as it would to the gradient of its own loss.

The data layer is read once per iteration, as in plain training, so
:func:`hotcold.caffe.train.train`'s snapshots and exact resume hold unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class AdversarialObjective:
    """Goodfellow et al.'s objective alpha J(x) + (1 - alpha) J(x + eps sign(grad_x J)) (Table 1, "Goodfellow*").

    Pass it to :func:`hotcold.caffe.train.train` as ``objective=``.
    """

    alpha: float = 0.5
    """Weight of the clean loss (Goodfellow et al.: 0.5)."""
    eps: float = 0.25
    """FGS step as a fraction of the pixel range 0..255 (Goodfellow et al.'s inputs lie in [0, 1]; they
    used 0.25 on MNIST). In the net's input units it is ``eps * 255 * input_scale``."""
    input_scale: float = 1 / 256
    """The data layer's ``transform_param.scale`` (LeNet: 1/256): the input blob holds ``pixel * input_scale``."""

    def __post_init__(self) -> None:
        for name, value, ok, fix in (
                ("alpha", self.alpha, lambda v: 0 <= v <= 1, "Goodfellow et al. use 0.5"),
                ("eps", self.eps, lambda v: 0 < v <= 1, "a fraction of the pixel range, e.g. 0.25"),
                ("input_scale", self.input_scale, lambda v: v > 0, "LeNet's is 1/256")):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not ok(value):
                raise ValueError(f"{name} is out of range, got {value!r} ({fix})")

    @property
    def identity(self) -> dict:
        """Recorded in ``train.json``: a resumed run must use the same objective."""
        return {"name": "goodfellow", "alpha": float(self.alpha), "eps": float(self.eps),
                "input_scale": float(self.input_scale)}

    def on_gradients(self, net: Any) -> None:
        """Replace the clean batch's gradients with those of the adversarial objective (steps 2-3 above)."""
        readers = [i for i, layer in enumerate(net.layers) if layer.type.endswith("Data")]
        if not readers:
            raise ValueError("the training net has no data layer; the adversarial objective perturbs the batch that "
                             "a Data layer reads (models/<name>.yaml: train_test_prototxt)")
        data_layer = readers[-1]
        input_blob = net.blobs[net.top_names[net._layer_names[data_layer]][0]]
        losses = [name for name in net.outputs if net.blob_loss_weights[name]]
        params = [blob for blobs in net.params.values() for blob in blobs]
        clean_loss = [float(net.blobs[name].data.sum()) for name in losses]
        clean = [blob.diff.copy() for blob in params]
        step = self.eps * 255 * self.input_scale
        input_blob.data[...] = np.clip(input_blob.data + np.float32(step) * np.sign(input_blob.diff), 0,
                                       np.float32(255 * self.input_scale))
        net.clear_param_diffs()
        net._forward(data_layer + 1, len(net.layers) - 1)
        net._backward(len(net.layers) - 1, 0)
        a = np.float32(self.alpha)
        for blob, g_clean in zip(params, clean):
            blob.diff[...] = a * g_clean + (1 - a) * blob.diff
        for name, loss in zip(losses, clean_loss):  # what train() reports: the loss of the objective
            net.blobs[name].data[...] = self.alpha * loss + (1 - self.alpha) * float(net.blobs[name].data.sum())
