"""Element-wise perturbation metrics of generated images (Rozsa et al. 2016, Fig. 2, 3, 5).

For a perturbed image ``x_adv`` and its original ``x`` with perturbation
``eta = x_adv - x`` in pixel units (0..255), of spatial size H x W with C
channels:

- ``l2 = ||eta||_2`` over all H * W * C values;
- ``l2_per_pixel = l2 / (H * W)``, the "L2 norm per pixel" printed under the
  ImageNet examples of Fig. 3: FGS with epsilon 21 changes all 224 x 224 x 3
  values by +-21, so ``21 * sqrt(224 * 224 * 3) / (224 * 224) = 21 * sqrt(3) /
  224 = 0.162``, the value of Fig. 3(a);
- ``linf = max |eta|``, in pixel units in both figures;
- ``l2_input = l2 * input_scale``, the L2 norm in the scale the network sees.
  LeNet multiplies pixels by 1/256 (``input_scale=0.00390625``); the "L2" of
  the MNIST examples of Fig. 2 is of this form.

Every function takes batches, N x H x W or N x H x W x C (C = 1 or 3), and
returns one value per image; wrap a single image as ``x[None]``. The
original may instead be one image of shape ``x_adv.shape[1:]``, shared by the
whole batch. Differences are taken in float64, so uint8 inputs cannot wrap
around.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PerturbationMetrics", "perturbation_metrics"]


@dataclass(frozen=True, eq=False)
class PerturbationMetrics:
    """Per-image perturbation metrics, each a float64 array of shape (N,).

    Attributes
    ----------
    l2 : numpy.ndarray
        ``||x_adv - x||_2`` over all values, in pixel units (0..255).
    l2_per_pixel : numpy.ndarray
        ``l2 / (H * W)``: the "L2 norm per pixel" of Fig. 3.
    linf : numpy.ndarray
        ``max |x_adv - x|`` in pixel units: the L-infinity of Fig. 2 and 3.
    l2_input : numpy.ndarray
        ``l2 * input_scale``: L2 in the network's input scale (Fig. 2 for
        LeNet with ``input_scale=1/256``).
    """

    l2: np.ndarray
    l2_per_pixel: np.ndarray
    linf: np.ndarray
    l2_input: np.ndarray


def _checked(array: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold integer or floating point pixel values, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def perturbation_metrics(x_adv: np.ndarray, x: np.ndarray, *, input_scale: float = 1.0) -> PerturbationMetrics:
    """L2, L2 per pixel, L-infinity and input-scale L2 of ``x_adv - x``, per image.

    Parameters
    ----------
    x_adv : numpy.ndarray
        Perturbed images in pixel units (0..255), N x H x W or N x H x W x C
        with C = 1 or 3 (channels last); any integer or float dtype.
    x : numpy.ndarray
        Originals: the shape of ``x_adv``, or one image of shape
        ``x_adv.shape[1:]`` compared with every ``x_adv[i]``.
    input_scale : float
        Factor from pixel units to the network's input (LeNet: 1/256 =
        0.00390625, which reproduces the L2 values of Fig. 2); only
        ``l2_input`` uses it.

    Returns
    -------
    PerturbationMetrics
        Arrays of shape (N,).
    """
    if not (np.isfinite(input_scale) and input_scale > 0):
        raise ValueError(f"input_scale must be a finite number > 0, got {input_scale!r}; LeNet uses 1/256")
    x_adv = _checked(x_adv, "x_adv")
    x = _checked(x, "x")
    is_batch = x_adv.ndim in (3, 4) and x_adv.shape[3:] in ((), (1,), (3,)) and 0 not in x_adv.shape[1:3]
    if not is_batch:
        raise ValueError(
            f"x_adv must be a batch N x H x W or N x H x W x C with C = 1 or 3 (channels last), "
            f"got shape {x_adv.shape}; wrap a single image as x_adv[None], "
            "move channels last with .transpose(0, 2, 3, 1)"
        )
    if x.shape not in (x_adv.shape, x_adv.shape[1:]):
        raise ValueError(
            f"x must have the shape of x_adv {x_adv.shape} or of one of its images {x_adv.shape[1:]}, "
            f"got {x.shape}"
        )
    n, height, width = x_adv.shape[:3]
    values_per_image = int(np.prod(x_adv.shape[1:]))
    eta = (x_adv.astype(np.float64) - x.astype(np.float64)).reshape(n, values_per_image)
    l2 = np.sqrt(np.einsum("ij,ij->i", eta, eta))
    linf = np.abs(eta).max(axis=1)
    return PerturbationMetrics(
        l2=l2,
        l2_per_pixel=l2 / (height * width),
        linf=linf,
        l2_input=l2 * input_scale,
    )
