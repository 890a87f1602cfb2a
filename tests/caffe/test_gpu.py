"""The CUDA build against the CPU: the same B_l (Sec. 4.3) and logits on LeNet.

These tests carry the ``gpu`` marker: they skip, naming the reason, where pycaffe is CPU-only or sees no GPU
(tests/conftest.py). A CUDA build computes both sides: the CPU path of the same library is the reference.
"""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.caffe.zoo import load_model

pytestmark = pytest.mark.gpu

MAX_RELATIVE_DIFFERENCE = 1e-4
"""Largest |GPU - CPU| over the largest |CPU| of an input gradient: cuBLAS sums in another order than
OpenBLAS, so float32 results agree to a few ulps of the largest entry, not bit for bit."""


def relative_difference(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| / max |want|: near-zero entries would make an elementwise ratio meaningless."""
    return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.mark.parametrize("blob", ["ip2", "ip1"])
def test_backward_from_blob_on_gpu_matches_cpu(blob, lenet_weights, mnist):
    cpu = load_model("lenet").classifier(lenet_weights, batch_size=50)
    gpu = load_model("lenet").classifier(lenet_weights, batch_size=50, device="gpu:0")
    images = mnist.test_images[:100]
    width = cpu.net.blobs[blob].data.shape[1]
    diff = np.random.default_rng(7).normal(size=(len(images), width)).astype(np.float32)
    want, got = cpu.backprop(images, blob, diff), gpu.backprop(images, blob, diff)
    assert np.abs(want).max() > 0
    assert relative_difference(got, want) <= MAX_RELATIVE_DIFFERENCE


def test_logits_on_gpu_match_cpu(lenet_weights, mnist):
    cpu = load_model("lenet").classifier(lenet_weights)
    gpu = load_model("lenet").classifier(lenet_weights, device="gpu")
    images = mnist.test_images[:200]
    assert relative_difference(gpu.predict(images), cpu.predict(images)) <= MAX_RELATIVE_DIFFERENCE
