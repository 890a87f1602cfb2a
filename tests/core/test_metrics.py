"""Tests of hotcold.core.metrics: L2, L2 per pixel, L-infinity and input-scale L2 (Fig. 2, 3)."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.core.metrics import PerturbationMetrics, perturbation_metrics

LENET_SCALE = 0.00390625  # 1/256, LeNet's input scale


def test_fig3_fgs_golden_value() -> None:
    # Fig. 3(a): FGS with epsilon 21 on a 224 x 224 x 3 image: "L2=0.162, L-inf=21".
    rng = np.random.default_rng(0)
    x = rng.integers(21, 235, (1, 224, 224, 3)).astype(np.uint8)  # +-21 stays inside [0, 255]
    x_adv = x + 21.0 * rng.choice([-1.0, 1.0], size=x.shape)
    metrics = perturbation_metrics(x_adv, x)
    assert isinstance(metrics, PerturbationMetrics)
    assert metrics.l2_per_pixel[0] == pytest.approx(21 * np.sqrt(3) / 224, rel=1e-12)
    assert round(float(metrics.l2_per_pixel[0]), 3) == 0.162
    assert metrics.l2[0] == pytest.approx(21 * np.sqrt(224 * 224 * 3), rel=1e-12)
    assert metrics.linf[0] == 21


def test_hand_computed_small_case() -> None:
    x = np.zeros((2, 2, 2))
    x_adv = np.array([[[3.0, 4.0], [0.0, 0.0]], [[0.0, -1.0], [2.0, 0.0]]])
    metrics = perturbation_metrics(x_adv, x, input_scale=LENET_SCALE)
    np.testing.assert_allclose(metrics.l2, [5.0, np.sqrt(5.0)], rtol=1e-15)
    np.testing.assert_allclose(metrics.l2_per_pixel, [5.0 / 4, np.sqrt(5.0) / 4], rtol=1e-15)
    np.testing.assert_array_equal(metrics.linf, [4.0, 2.0])
    np.testing.assert_allclose(metrics.l2_input, [5.0 / 256, np.sqrt(5.0) / 256], rtol=1e-15)


def test_fig2_l2_is_in_lenet_input_units() -> None:
    # Fig. 2(a) prints L2 = 0.990 for FGS with L-inf 13 on a 28 x 28 digit. Only L2 in LeNet's
    # input units (pixels / 256) has that magnitude: 13 on 400 of the 784 pixels gives
    # 13 * 20 / 256 = 1.016, against 260 in pixel units and 0.33 per pixel.
    x = np.zeros((1, 28, 28), np.uint8)
    x_adv = x.astype(np.float64)
    x_adv.reshape(-1)[:400] = 13
    metrics = perturbation_metrics(x_adv, x, input_scale=LENET_SCALE)
    assert metrics.l2[0] == pytest.approx(260.0)
    assert metrics.l2_input[0] == pytest.approx(260.0 / 256)
    assert metrics.l2_per_pixel[0] == pytest.approx(260.0 / 784)


def test_uint8_inputs_do_not_wrap_around() -> None:
    x = np.full((1, 4, 4), 200, np.uint8)
    x_adv = np.full((1, 4, 4), 10, np.uint8)  # uint8 subtraction would give 66, not -190
    metrics = perturbation_metrics(x_adv, x)
    assert metrics.linf[0] == 190
    assert metrics.l2[0] == pytest.approx(190 * 4)
    assert metrics.l2.dtype == np.float64


def test_batch_equals_per_image_and_broadcast_original() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)
    x_adv = rng.integers(0, 256, (5, 16, 16, 3)).astype(np.uint8)
    batch = perturbation_metrics(x_adv, x, input_scale=0.5)
    repeated = perturbation_metrics(x_adv, np.broadcast_to(x, x_adv.shape), input_scale=0.5)
    for field in ("l2", "l2_per_pixel", "linf", "l2_input"):
        np.testing.assert_array_equal(getattr(batch, field), getattr(repeated, field))
    for i in range(len(x_adv)):
        eta = x_adv[i].astype(np.float64) - x
        assert batch.l2[i] == pytest.approx(np.linalg.norm(eta.ravel()), rel=1e-12)
        assert batch.linf[i] == np.abs(eta).max()
        assert batch.l2_per_pixel[i] == pytest.approx(batch.l2[i] / 256, rel=1e-12)
        assert batch.l2_input[i] == pytest.approx(batch.l2[i] * 0.5, rel=1e-12)


def test_single_channel_axis_counts_pixels_not_values() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 255, (3, 10, 12))
    x_adv = rng.uniform(0, 255, (3, 10, 12))
    gray = perturbation_metrics(x_adv, x)
    with_channel = perturbation_metrics(x_adv[..., None], x[..., None])
    np.testing.assert_array_equal(gray.l2_per_pixel, with_channel.l2_per_pixel)


def test_empty_batch() -> None:
    metrics = perturbation_metrics(np.zeros((0, 28, 28)), np.zeros((28, 28)))
    assert metrics.l2.shape == metrics.linf.shape == (0,)


@pytest.mark.parametrize(
    ("x_adv", "x", "kwargs", "match"),
    [
        pytest.param(np.zeros((28, 28)), np.zeros((28, 28)), {}, r"wrap a single image", id="single_image"),
        pytest.param(np.zeros((2, 3, 28, 28)), np.zeros((2, 3, 28, 28)), {}, "channels last", id="channels_first"),
        pytest.param(np.zeros((2, 28, 28, 4)), np.zeros((2, 28, 28, 4)), {}, "C = 1 or 3", id="four_channels"),
        pytest.param(np.zeros((2, 0, 28)), np.zeros((2, 0, 28)), {}, "batch N x H x W", id="empty_image"),
        pytest.param(np.zeros((2, 28, 28)), np.zeros((3, 28, 28)), {}, "x must have the shape", id="n_mismatch"),
        pytest.param(np.zeros((2, 28, 28)), np.zeros((28, 27)), {}, "one of its images", id="hw_mismatch"),
        pytest.param(np.zeros((1, 4, 4), bool), np.zeros((1, 4, 4)), {}, "dtype bool", id="bool"),
        pytest.param(np.zeros((1, 4, 4), complex), np.zeros((1, 4, 4)), {}, "dtype complex", id="complex"),
        pytest.param(np.zeros((1, 4, 4)), np.full((1, 4, 4), np.inf), {}, "x contains NaN", id="inf"),
        pytest.param(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), {"input_scale": 0.0}, "input_scale", id="scale"),
    ],
)
def test_invalid_input_raises(x_adv: np.ndarray, x: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        perturbation_metrics(x_adv, x, **kwargs)
