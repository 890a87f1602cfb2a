"""Perceptual adversarial similarity score (PASS), Rozsa et al. 2016, Sec. 3.

PASS measures how plausible a perturbed image ``x_adv`` (x~ in the paper) is as
another view of the original ``x``, in two stages:

1. Alignment (Eq. 1). A homography ``H`` maps ``x_adv`` onto ``x`` by
   maximising the enhanced correlation coefficient (ECC) of Evangelidis and
   Psarakis, i.e. minimising::

       || xbar / ||xbar||  -  psibar(x_adv, x) / ||psibar(x_adv, x)|| ||

   where a bar is the zero-mean image and ``psi(x_adv, x)`` is ``x_adv`` warped
   by ``H``, i.e. maximising the correlation coefficient of ``x`` and
   ``psi(x_adv, x)``. The optimisation runs coarse to fine: from the identity
   on a 2x downsampled pair, then refined at full resolution. Each level is
   the ECC iteration of OpenCV's ``findTransformECC`` (``MOTION_HOMOGRAPHY``:
   the same pre-blur, bilinear warps, masks, illumination factor lambda and
   update), run by NumPy on a whole batch of pairs at once and stopped once an
   update moves the image corners by less than ``warp_tolerance`` pixels (or
   the correlation gains less than ``epsilon``). The result, or the identity
   where that has the higher ECC at full resolution, is ``H``; see
   :func:`align`. ``pyramid_levels=1`` calls ``cv2.findTransformECC`` itself,
   once, from the identity.

2. Similarity (Eq. 2-3). With ``alpha = beta = gamma = 1`` and ``C3 = C2 / 2``
   the regional index ``RSSIM = L * C * S`` (Eq. 2) folds into::

       RSSIM(x, y) = (2 mu_x mu_y + C1) (2 sigma_xy + C2)
                     / ((mu_x^2 + mu_y^2 + C1) (sigma_x^2 + sigma_y^2 + C2))

   with ``C1 = (k1 * data_range)^2``, ``C2 = (k2 * data_range)^2``, and
   Gaussian-weighted (11 x 11 window, sigma 1.5) local means, population
   variances and covariance. SSIM (Eq. 3) is the mean of RSSIM over the pixels
   whose window lies inside the image, as in Wang et al. 2004 and
   ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
   use_sample_covariance=False, data_range=255)``. Colour images: the mean over
   channels.

Then (Eq. 4)::

    PASS(x_adv, x) = SSIM(psi(x_adv, x), x)

When ECC fails at every level (where OpenCV's ``findTransformECC`` would
raise) the alignment is the identity, PASS is the unaligned SSIM and the result
says ``converged=False``. ECC defaults (300 iterations, epsilon 1e-8, warp
tolerance 0.005 px, 5 x 5 pre-blur, 2 pyramid levels, bicubic warp) and their
measurements on real MNIST: docs/pass.md.

Images are single arrays H x W or H x W x 3 (channels last), uint8 or float
with values in [0, 255]; batches (:func:`pass_scores`, vectorised and spread
over worker processes or threads) add a leading N axis. Scores depend only on the pair:
:func:`pass_scores` gives, bit for bit, what :func:`pass_score` gives for each
pair, whatever the batch and the number of workers.
"""
from __future__ import annotations

import itertools
import multiprocessing
import sys
import os
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_GAUSS_FILT_SIZE",
    "DEFAULT_INTERPOLATION",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_PYRAMID_LEVELS",
    "DEFAULT_WARP_TOLERANCE",
    "Alignment",
    "PassBatch",
    "PassResult",
    "align",
    "pass_score",
    "pass_scores",
    "ssim",
]

DEFAULT_MAX_ITERATIONS = 300
"""ECC iteration cap per pyramid level; nearly all pairs stop earlier (see :data:`DEFAULT_WARP_TOLERANCE`)."""
DEFAULT_EPSILON = 1e-8
"""ECC also stops once the correlation coefficient gains less than this (OpenCV's ``TERM_CRITERIA_EPS``).

Against a near-exhaustive 5000 iterations / 1e-10, (300, 1e-8) moved no PASS
by more than 1.1e-4 on 200 perturbed MNIST digits, where (100, 1e-6) moved
smooth perturbations by up to 0.023; see docs/pass.md."""
DEFAULT_WARP_TOLERANCE = 0.005
"""ECC stops once an update moves none of the image's four corners by more than this many pixels
(pixels of the pyramid level being refined); 0 turns the rule off.

The rule that ends most runs: against OpenCV's rules alone it cuts the
full-resolution iterations of 3,989 real LeNet adversarials from 44.7 to
21.1 per pair and keeps 99.55 % of their PASS values within 1e-3 (those rules
in this implementation: 99.72 %; ECC never settles on the rest); 0.01 px
would keep 99.05 %. See docs/pass.md."""
DEFAULT_GAUSS_FILT_SIZE = 5
"""Gaussian pre-blur that ECC applies to both images at full resolution:
OpenCV's default, and the fixed 5 x 5 blur of OpenCV 3, current when the paper
was written. A larger full-resolution blur aligns bigger shifts but lets
smooth perturbations pull the homography away; the pyramid
(:data:`DEFAULT_PYRAMID_LEVELS`) widens the basin instead (see docs/pass.md)."""
DEFAULT_PYRAMID_LEVELS = 2
"""Levels of the coarse-to-fine ECC: the full-resolution pair plus one 2x
downsampled pair (``cv2.pyrDown``). 1 runs OpenCV's ``findTransformECC`` at
full resolution only, from the identity. On 200 real MNIST test digits a 2 px
shift keeps PASS > 0.95 in 100 % of cases with 2 levels and 93 % with 1;
3 levels are worse on 28 x 28 images (see docs/pass.md)."""
DEFAULT_INTERPOLATION = "cubic"
"""Resampling of ``psi(x_adv, x)``: ``"cubic"`` (bicubic, ``cv2.INTER_CUBIC``)
or ``"linear"`` (bilinear, the ECC sample code's choice). The paper does not
say; bilinear resampling blurs thin strokes, so even the exact inverse of a 5
degree rotation of an MNIST digit scores a median SSIM of 0.940 with
``"linear"`` and 0.973 with ``"cubic"`` (see docs/pass.md)."""

_PIXEL_MAX = 255.0
_INTERPOLATIONS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}
# Coarse pyramid levels only supply the start of the next level, so they stop early, and a 7 x 7
# pre-blur of a 2x downsampled image (about 14 x 14 at full resolution) widens ECC's basin to
# 2-3 px shifts of thin MNIST strokes. Measurements: docs/pass.md.
_COARSE_GAUSS_FILT_SIZE = 7
_COARSE_MAX_ITERATIONS = 20
_COARSE_EPSILON = 1e-5
# cv2.pyrDown samples the blurred image at even pixels: coarse pixel p is fine pixel 2 p.
_UPSCALE = np.diag([2.0, 2.0, 1.0])
_DOWNSCALE = np.diag([0.5, 0.5, 1.0])
# SSIM as in Sec. 3 and Wang et al. 2004: an 11 x 11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03.
_SIGMA = 1.5
_WIN_SIZE = 11
_K1 = 0.01
_K2 = 0.03
# pass_scores cuts batches into chunks of at most about this many pixel values (a chunk holds several
# float64 copies of its images: 7 pairs of 224 x 224 x 3, 1,300 MNIST pairs), and uses a pool of workers
# from this many pixels on (H x W x N): a process pool takes some 15 ms to start, the time of 30 MNIST pairs.
_CHUNK_VALUES = 1 << 20
_POOL_PIXELS = 1 << 18
# Images of at least this many pixels go to a thread pool instead: their NumPy and OpenCV calls are long
# enough to run in parallel, and processes would copy them (224 x 224 x 3 pairs: 2 threads about 150
# pairs/s, 2 processes about 105; 28 x 28: 2 threads no faster than one, 2 processes 1.7x;
# docs/performance.md).
_THREAD_PIXELS = 1 << 12
# _mean_ssim filters and combines pairs in blocks of about this many pixels (memory, cache).
_SSIM_BLOCK_PIXELS = 1 << 16
# ITU-R BT.601 luma weights for R, G, B.
_LUMA = np.array([0.299, 0.587, 0.114])
# Ways ECC stops at a level without a result, named as OpenCV's findTransformECC raises them.
_ECC_OK, _ECC_NAN, _ECC_MINIMISES = 0, 1, 2
_ECC_ERRORS = {
    _ECC_NAN: "the correlation is NaN: an image without variance (OpenCV's findTransformECC: 'NaN encountered.')",
    _ECC_MINIMISES: (
        "the update would minimise the correlation: the images are uncorrelated or do not overlap "
        "(OpenCV's findTransformECC: 'The algorithm stopped before its convergence.')"
    ),
}


@dataclass(frozen=True, eq=False)
class Alignment:
    """Result of :func:`align`, the homography alignment of Eq. 1.

    Attributes
    ----------
    homography : numpy.ndarray
        3 x 3 float64 matrix ``H`` mapping pixel coordinates of ``x`` to
        coordinates of ``x_adv``: ``aligned(p) = x_adv(H p)`` in homogeneous
        coordinates. The identity when ECC failed, or when the identity has
        the higher ECC at full resolution.
    aligned : numpy.ndarray
        ``psi(x_adv, x)``: ``x_adv`` warped onto ``x`` (float64, 0..255, the
        shape of ``x_adv``). Pixels that map from outside ``x_adv`` are 0.
        ``x_adv`` itself (as float64) when the homography is the identity.
    converged : bool
        False when ECC failed at every pyramid level (the correlation would
        be minimised, or an image without variance such as a blank one).
    message : str
        Why ECC failed at the pyramid levels where it did, e.g.
        ``"level 1 (14 x 14): the correlation is NaN: ..."``, joined by
        ``"; "``; ``""`` when ECC returned at every level.
    """

    homography: np.ndarray
    aligned: np.ndarray
    converged: bool
    message: str


@dataclass(frozen=True, eq=False)
class PassResult:
    """PASS of one pair (Eq. 4); ``float(result)`` gives the score.

    Attributes
    ----------
    score : float
        ``SSIM(psi(x_adv, x), x)``; the unaligned ``SSIM(x_adv, x)`` when ECC
        failed.
    converged : bool
        Whether the ECC alignment succeeded (see :class:`Alignment`).
    homography : numpy.ndarray
        The 3 x 3 float64 homography used for the alignment.
    message : str
        Why ECC failed at the pyramid levels where it did (see
        :class:`Alignment`), ``""`` when it failed at none.
    """

    score: float
    converged: bool
    homography: np.ndarray
    message: str

    def __float__(self) -> float:
        return self.score


@dataclass(frozen=True, eq=False)
class PassBatch:
    """PASS of N pairs, from :func:`pass_scores`.

    Attributes
    ----------
    scores : numpy.ndarray
        float64, shape (N,): PASS of each pair (Eq. 4).
    converged : numpy.ndarray
        bool, shape (N,): whether ECC converged for each pair; where it did
        not, the score is the unaligned SSIM.
    """

    scores: np.ndarray
    converged: np.ndarray


@dataclass(frozen=True)
class _Level:
    """Stopping rules and pre-blur of one pyramid level."""

    max_iterations: int
    epsilon: float
    warp_tolerance: float
    gauss_filt_size: int


@dataclass(frozen=True)
class _EccSettings:
    fine: _Level
    coarse: _Level
    pyramid_levels: int
    interpolation: int


def _check_int(value: object, name: str, *, minimum: int, odd: bool = False) -> None:
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < minimum or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        raise ValueError(f"{name} must be {kind} >= {minimum}, got {value!r}")


def _ecc_settings(
    max_iterations: int,
    epsilon: float,
    warp_tolerance: float | None,
    gauss_filt_size: int,
    pyramid_levels: int,
    interpolation: str,
) -> _EccSettings:
    _check_int(max_iterations, "max_iterations", minimum=1)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(
            f"epsilon must be a finite number >= 0, got {epsilon!r}; "
            "use 0 to stop on max_iterations and warp_tolerance only"
        )
    _check_int(gauss_filt_size, "gauss_filt_size", minimum=1, odd=True)
    _check_int(pyramid_levels, "pyramid_levels", minimum=1)
    if warp_tolerance is None:
        warp_tolerance = DEFAULT_WARP_TOLERANCE if pyramid_levels > 1 else 0.0
    elif pyramid_levels == 1:
        raise ValueError(
            f"warp_tolerance applies to the pyramid ECC, got warp_tolerance={warp_tolerance!r} with "
            "pyramid_levels=1, which runs OpenCV's findTransformECC (it stops on max_iterations and "
            "epsilon only); leave warp_tolerance unset, or use pyramid_levels >= 2"
        )
    elif not np.isfinite(warp_tolerance) or warp_tolerance < 0:
        raise ValueError(
            f"warp_tolerance must be a finite number of pixels >= 0, got {warp_tolerance!r}; use 0 to turn it off"
        )
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}")
    return _EccSettings(
        fine=_Level(int(max_iterations), float(epsilon), float(warp_tolerance), int(gauss_filt_size)),
        coarse=_Level(
            min(int(max_iterations), _COARSE_MAX_ITERATIONS),
            max(float(epsilon), _COARSE_EPSILON),
            float(warp_tolerance),
            _COARSE_GAUSS_FILT_SIZE,
        ),
        pyramid_levels=int(pyramid_levels),
        interpolation=_INTERPOLATIONS[interpolation],
    )


def _check_pixels(array: np.ndarray, name: str, upper: float) -> None:
    """Dtype and value checks shared by single images and batches."""
    if array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(
            f"{name} must be uint8 or floating point, got dtype {array.dtype}; "
            f"convert it with {name}.astype(np.float64)"
        )
    if array.dtype == np.uint8 and upper >= _PIXEL_MAX:
        return
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(array.min(initial=0.0)), float(array.max(initial=0.0))
    if low < 0.0 or high > upper:
        raise ValueError(
            f"{name} must lie in [0, {upper:g}], got values in [{low:g}, {high:g}]; "
            f"clip it with np.clip({name}, 0, {upper:g})"
        )


def _check_image_shape(shape: tuple[int, ...], name: str, *, min_side: int) -> None:
    if len(shape) not in (2, 3):
        raise ValueError(
            f"{name} must be one image of shape H x W or H x W x 3, got {len(shape)}-D shape {shape}"
        )
    if len(shape) == 3 and shape[2] != 3:
        raise ValueError(
            f"{name} must have 3 channels last (H x W x 3), got shape {shape}; "
            "squeeze a single channel away, or move channels last with .transpose(1, 2, 0)"
        )
    if min(shape[:2]) < min_side:
        raise ValueError(
            f"{name} must be at least {min_side} x {min_side} pixels, got {shape[0]} x {shape[1]}"
        )


def _image(array: np.ndarray, name: str, *, upper: float = _PIXEL_MAX, min_side: int = 1) -> np.ndarray:
    arr = np.asarray(array)
    _check_image_shape(arr.shape, name, min_side=min_side)
    _check_pixels(arr, name, upper)
    return arr


def _same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}")


# --- SSIM (Eq. 2-3) --------------------------------------------------------------------------------


def _gaussian_window(win_size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian of ``win_size`` taps (the 11-tap window of Eq. 2)."""
    radius = (win_size - 1) // 2
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    window = np.exp(-0.5 * (taps / sigma) ** 2)
    return window / window.sum()


def _mean_ssim(
    a: np.ndarray,
    b: np.ndarray,
    *,
    data_range: float = _PIXEL_MAX,
    sigma: float = _SIGMA,
    win_size: int = _WIN_SIZE,
    k1: float = _K1,
    k2: float = _K2,
) -> np.ndarray:
    """SSIM (Eq. 3) of N pairs of validated float64 images, ``N x H x W`` or ``N x H x W x C``; shape (N,).

    RSSIM (Eq. 2) is evaluated at every pixel whose window lies inside the
    image and averaged over those pixels (and the channels). Each local
    statistic of each pair is one ``cv2.sepFilter2D`` call and each mean a
    reduction over that pair's own row, so a pair's SSIM does not depend on
    the rest of the batch. The variances enter RSSIM only as their sum, so
    ``a^2 + b^2`` is filtered once (four filters instead of five).
    """
    n, height, width = a.shape[:3]
    window = _gaussian_window(win_size, sigma)
    pad = (win_size - 1) // 2
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    scores = np.empty(n)
    block = max(1, _SSIM_BLOCK_PIXELS // (height * width))
    # Scratch arrays reused block after block: fresh ones this large cost page faults.
    moments = np.empty((4,) + a[:block].shape)
    product = np.empty((2,) + a[:block].shape)
    valid = (slice(None), slice(None), slice(pad, height - pad), slice(pad, width - pad))
    scratch = np.empty((2,) + moments[valid][0].shape)
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        m = rows.stop - rows.start
        # Filtered a, b, a^2 + b^2 (only the sum of the variances enters RSSIM) and ab; the border mode is
        # irrelevant: the rows and columns it touches are cropped below.
        squares = np.square(a[rows], out=product[0, :m])
        squares += np.square(b[rows], out=product[1, :m])
        cross = np.multiply(a[rows], b[rows], out=product[1, :m])
        for stat, out in zip((a[rows], b[rows], squares, cross), moments[:, :m]):
            for image, filtered in zip(stat, out):
                cv2.sepFilter2D(image, cv2.CV_64F, window, window, dst=filtered, borderType=cv2.BORDER_REFLECT)
        rssim = _rssim(moments[:, :m][valid], c1, c2, scratch[:, :m])
        scores[rows] = rssim.reshape(m, -1).mean(axis=1)
    return scores


def _rssim(moments: np.ndarray, c1: float, c2: float, scratch: np.ndarray) -> np.ndarray:
    """RSSIM (Eq. 2) from the filtered a, b, a^2 + b^2 and ab (``moments``, 4 x ...), in ``scratch`` (2 x ...).

    ``(2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2))``, where
    ``var_a + var_b = E[a^2 + b^2] - (mu_a^2 + mu_b^2)``; overwrites the last two moments.
    """
    mu_a, mu_b, squares, cross = moments
    mu_ab = np.multiply(mu_a, mu_b, out=scratch[0])
    mu_squares = np.multiply(mu_a, mu_a, out=scratch[1])
    mu_squares += mu_b * mu_b
    variances = np.subtract(squares, mu_squares, out=squares)
    variances += c2
    mu_squares += c1
    denominator = np.multiply(mu_squares, variances, out=mu_squares)
    covariance = np.subtract(cross, mu_ab, out=cross)
    covariance *= 2
    covariance += c2
    mu_ab *= 2
    mu_ab += c1
    numerator = np.multiply(mu_ab, covariance, out=mu_ab)
    numerator /= denominator
    return numerator


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    *,
    data_range: float = _PIXEL_MAX,
    sigma: float = _SIGMA,
    win_size: int = _WIN_SIZE,
    k1: float = _K1,
    k2: float = _K2,
) -> float:
    """Structural similarity of two images (Eq. 2-3).

    RSSIM (Eq. 2, ``alpha = beta = gamma = 1``, ``C3 = C2 / 2``) from
    Gaussian-weighted local statistics with population variances, averaged
    (Eq. 3) over the pixels whose ``win_size`` x ``win_size`` window lies
    inside the image, i.e. ``(win_size - 1) // 2`` pixels are cropped per side.
    Colour images: the mean over the three channels.

    The defaults are the paper's (and Wang et al. 2004's) and equal
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=255)``. PASS uses this
    very computation, so an unaligned PASS equals ``ssim`` bit for bit.

    Parameters
    ----------
    a, b : numpy.ndarray
        H x W or H x W x 3, uint8 or float with values in [0, data_range].
    data_range : float
        Dynamic range of the pixel values; ``C1 = (k1 * data_range)^2``,
        ``C2 = (k2 * data_range)^2``.
    sigma : float
        Standard deviation of the Gaussian window, in pixels.
    win_size : int
        Odd side of the Gaussian window (truncated there) and of the border
        strip excluded from the mean. skimage always truncates at 3.5 sigma, so
        it agrees with this function only when ``win_size == 2 * int(3.5 *
        sigma + 0.5) + 1`` (11 for sigma 1.5).
    k1, k2 : float
        SSIM stabilising constants.

    Returns
    -------
    float
        SSIM in [-1, 1]; 1 for identical images.
    """
    if not (np.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a finite number > 0, got {data_range!r}")
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    _check_int(win_size, "win_size", minimum=1, odd=True)
    for name, value in (("k1", k1), ("k2", k2)):
        if not (np.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    a = _image(a, "a", upper=data_range, min_side=win_size)
    b = _image(b, "b", upper=data_range, min_side=win_size)
    _same_shape(a, b, ("a", "b"))
    scores = _mean_ssim(
        a.astype(np.float64)[None],
        b.astype(np.float64)[None],
        data_range=data_range,
        sigma=sigma,
        win_size=win_size,
        k1=k1,
        k2=k2,
    )
    return float(scores[0])


# --- ECC (Eq. 1) -----------------------------------------------------------------------------------


def _luminance(images: np.ndarray, channels: bool) -> np.ndarray:
    """Float32 single-channel images for ECC: BT.601 luma of colour images (``channels`` True).

    ``images @ _LUMA`` is one BLAS product per image row, the same call for a
    row whatever the batch around it.
    """
    if channels:
        images = images @ _LUMA
    return images.astype(np.float32)


def _inside(homographies: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels p whose warped position H p has its whole 4 x 4 bicubic footprint inside the image; N x H x W.

    As in ECC itself (and OpenCV's ``findTransformECC``), pixels warped in
    from outside the image take no part in the correlation.
    """
    h = homographies.reshape(len(homographies), 9)[:, :, None, None]
    cols = np.arange(width, dtype=np.float64)
    rows = np.arange(height, dtype=np.float64)[:, None]

    def row(i: int) -> np.ndarray:
        out = h[:, 3 * i] * cols + h[:, 3 * i + 1] * rows
        out += h[:, 3 * i + 2]
        return out

    w = row(2)
    inside = w > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, size in ((0, width), (1, height)):
            coordinate = row(i)
            coordinate /= w
            inside &= coordinate >= 1
            inside &= coordinate <= size - 2
    return inside


def _correlations(template: np.ndarray, images: list[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Correlation coefficient of ``template[i]`` with each ``images[k][i]`` over ``mask[i]``: the ECC
    that Eq. 1 maximises.

    float64, one array of shape (N,) per image; -inf where fewer than two
    pixels or no variance. Every reduction runs over one pair's own row.
    """
    n = len(template)
    mask = mask.reshape(n, -1)
    count = mask.sum(axis=1)

    def centred(x: np.ndarray) -> np.ndarray:
        x = x.reshape(n, -1).astype(np.float64)
        x *= mask
        x -= (x.sum(axis=1) / count)[:, None]
        x *= mask
        return x

    with np.errstate(divide="ignore", invalid="ignore"):
        t = centred(template)
        t_norm = (t * t).sum(axis=1)
        out = []
        for image in images:
            x = centred(image)
            norm = np.sqrt(t_norm * (x * x).sum(axis=1))
            out.append(np.where((count >= 2) & (norm > 0), (t * x).sum(axis=1) / norm, -np.inf))
    return out


def _blur(images: np.ndarray, size: int) -> np.ndarray:
    """``cv2.GaussianBlur(image, (size, size), 0)`` of each float32 image (OpenCV's ECC pre-blur)."""
    out = np.empty(images.shape, dtype=np.float32)
    for image, blurred in zip(images, out):
        cv2.GaussianBlur(image, (size, size), 0, dst=blurred, sigmaY=0)
    return out


@dataclass(frozen=True)
class _Grid:
    """Pixel coordinates of one image size, shared by every pair of a level."""

    height: int
    width: int
    cols: np.ndarray  # (W,) float32
    rows: np.ndarray  # (H, 1) float32
    monomials: np.ndarray  # (H * W, 6) float32: X^2, XY, Y^2, X, Y, 1
    corners: np.ndarray  # (2, 4) float64: x and y of the four corners

    @classmethod
    def of(cls, height: int, width: int) -> _Grid:
        cols = np.arange(width, dtype=np.float32)
        rows = np.arange(height, dtype=np.float32)[:, None]
        x = np.broadcast_to(cols, (height, width)).reshape(-1)
        y = np.broadcast_to(rows, (height, width)).reshape(-1)
        monomials = np.stack([x * x, x * y, y * y, x, y, np.ones_like(x)], axis=1)
        corners = np.array([[0, width - 1, 0, width - 1], [0, 0, height - 1, height - 1]], dtype=np.float64)
        return cls(height, width, cols, rows, monomials, corners)

    def moments(self, products: np.ndarray) -> np.ndarray:
        """Sums of M x K x (H W) pixel products times X^2, XY, Y^2, X, Y, 1: M x K x 6, float64.

        One BLAS product per pair and strip of rows, each small enough
        (``_BLAS_PIXELS``) that OpenBLAS runs it on the calling thread: its
        own threads only slowed these products down (by a tenth on 224 x 224
        images). The strips depend on the image size only, so each pair's sums
        depend on its own data only.
        """
        rows = max(1, _BLAS_PIXELS // self.width)
        total = None
        for top in range(0, self.height, rows):
            pixels = slice(top * self.width, min(top + rows, self.height) * self.width)
            strip = np.matmul(products[:, :, pixels], self.monomials[pixels]).astype(np.float64)
            total = strip if total is None else total + strip
        return total

    def corner_positions(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where N sets of 8 warp parameters send the image corners: (x, y), each N x 4."""
        p = params.astype(np.float64)[:, :, None]
        x, y = self.corners
        den = p[:, 6] * x + p[:, 7] * y + 1.0
        return (p[:, 0] * x + p[:, 1] * y + p[:, 2]) / den, (p[:, 3] * x + p[:, 4] * y + p[:, 5]) / den


# Where the 8 x 8 ECC Hessian and the projections sit in the moments of _ecc_step. Jacobian column k
# of the homography is s_k * e_k: s in (a, b, c) = (gx / den, gy / den, -(u a + v b)), e in (X, Y, 1).
_SOURCE = np.array([0, 0, 0, 1, 1, 1, 2, 2])
_MONOMIAL = np.array([0, 1, 2, 0, 1, 2, 0, 1])  # X, Y, 1
# Products of two sources (aa, ab, ac, bb, bc, cc) and of two monomials (XX, XY, YY, X, Y, 1).
_PAIR = {(0, 0): 0, (0, 1): 1, (0, 2): 2, (1, 1): 3, (1, 2): 4, (2, 2): 5}
_MONO_PAIR = {(0, 0): 0, (0, 1): 1, (1, 1): 2, (0, 2): 3, (1, 2): 4, (2, 2): 5}
_HESSIAN_ROW = np.array(
    [[_PAIR[tuple(sorted((_SOURCE[i], _SOURCE[j])))] for j in range(8)] for i in range(8)]
)
_HESSIAN_COL = np.array(
    [[_MONO_PAIR[tuple(sorted((_MONOMIAL[i], _MONOMIAL[j])))] for j in range(8)] for i in range(8)]
)
_PROJECTION_COL = np.array([3, 4, 5, 3, 4, 5, 3, 4])  # X, Y, 1 as single monomials
# _ecc_level advances the active pairs of a level in blocks of about this many pixels, small enough for
# the block's arrays to stay in cache.
_BLOCK_PIXELS = 1 << 16
# From this many pixels per image on, one cv2.remap per pair samples faster than np.take over a block.
_REMAP_PIXELS = 1 << 12
# OpenBLAS computes a product of fewer than 2^18 multiply-adds on the calling thread (12 x 6 x 3,640
# pixels); _Grid.moments keeps to that.
_BLAS_PIXELS = 3584


class _Sampler:
    """Bilinear samples, zero outside, of N blurred images and their central-difference gradients.

    The gradients are OpenCV's ECC gradients (``filter2D`` with ``(-0.5, 0,
    0.5)``, i.e. 0 in the first and last row / column). Small images are
    sampled for many pairs at once with ``np.take`` from zero-padded planes;
    from :data:`_REMAP_PIXELS` pixels on, one ``cv2.remap`` per pair is
    faster. Either way a pair's samples depend on its own data only.
    """

    def __init__(self, images: np.ndarray) -> None:
        n, height, width = images.shape
        self.height, self.width = height, width
        gradients = np.zeros((2, n, height, width), dtype=np.float32)
        if width > 2:
            np.subtract(images[:, :, 2:], images[:, :, :-2], out=gradients[0, :, :, 1:-1])
        if height > 2:
            np.subtract(images[:, 2:], images[:, :-2], out=gradients[1, :, 1:-1])
        gradients *= 0.5
        self.remap = height * width >= _REMAP_PIXELS
        if self.remap:
            self.stacked = np.stack([images, gradients[0], gradients[1]], axis=-1)
            return
        # Zero-padded by 2 pixels; each plane also shifted by (1, row, row + 1) so that one index
        # fetches all four bilinear corners.
        padded_w = width + 4
        planes = np.zeros((3, n, height + 4, padded_w), dtype=np.float32)
        planes[0, :, 2:-2, 2:-2] = images
        planes[1:, :, 2:-2, 2:-2] = gradients
        self.planes = [[plane, plane[1:], plane[padded_w:], plane[padded_w + 1 :]] for plane in planes.reshape(3, -1)]
        self.offsets = np.arange(n, dtype=np.intp) * ((height + 4) * padded_w) + (2 * padded_w + 2)

    def sample(self, ids: np.ndarray, u: np.ndarray, v: np.ndarray, work: _Workspace) -> list[np.ndarray]:
        """Image, d/dx and d/dy of pairs ``ids`` at ``(u, v)`` (M x (H W) float32 each), in ``work``."""
        m = len(ids)
        height, width = self.height, self.width
        x, y, x0, y0, w00, w01, w10, w11 = work.f32[3:11, :m]
        sampled = list(work.f32[11:14, :m])
        # Anything beyond the 2-pixel border samples zeros; NaN coordinates go there too.
        np.fmax(u, -2.0, out=x)
        np.fmin(x, float(width), out=x)
        np.fmax(v, -2.0, out=y)
        np.fmin(y, float(height), out=y)
        if self.remap:
            out = work.remapped[:m]
            for k, i in enumerate(ids):
                cv2.remap(
                    self.stacked[i], x[k].reshape(height, width), y[k].reshape(height, width), cv2.INTER_LINEAR,
                    dst=out[k].reshape(height, width, 3), borderMode=cv2.BORDER_CONSTANT, borderValue=0,
                )
            for c, plane in enumerate(sampled):
                np.copyto(plane, out[..., c])
            return sampled
        np.floor(x, out=x0)
        np.floor(y, out=y0)
        fx = np.subtract(x, x0, out=x)
        fy = np.subtract(y, y0, out=y)
        y0 *= width + 4
        y0 += x0
        index = work.index[:m]
        np.copyto(index, y0, casting="unsafe")
        index += self.offsets[ids, None]
        np.multiply(fx, fy, out=w11)
        np.subtract(fx, w11, out=w01)
        np.subtract(fy, w11, out=w10)
        np.subtract(1.0, fx, out=w00)
        w00 -= w10
        corner = x0
        for shifted, value in zip(self.planes, sampled):
            shifted[0].take(index, out=value)
            value *= w00
            for plane, weight in zip(shifted[1:], (w01, w10, w11)):
                plane.take(index, out=corner)
                corner *= weight
                value += corner
        return sampled


class _Workspace:
    """Scratch arrays of one level for blocks of up to ``pairs`` pairs, reused by every step.

    Fresh arrays of this size come from the operating system as new pages at
    every step, which costs more than much of the arithmetic.
    """

    def __init__(self, pairs: int, size: int, remap: bool) -> None:
        self.f32 = np.empty((15, pairs, size), dtype=np.float32)
        self.f64 = np.empty((3, pairs, size))
        self.index = np.empty((pairs, size), dtype=np.intp)
        self.mask = np.empty((pairs, size), dtype=bool)
        self.products = np.empty((pairs, 12, size), dtype=np.float32)
        self.remapped = np.empty((pairs, size, 3), dtype=np.float32) if remap else None


def _ecc_step(
    p: np.ndarray, templates: np.ndarray, sampler: _Sampler, ids: np.ndarray, grid: _Grid, work: _Workspace
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One ECC iteration for M pairs: (updated float32 parameters, rho, status), as OpenCV computes them.

    ``p`` holds the M x 8 float32 parameters, ``templates`` the level's N x
    (H W) blurred templates, ``sampler`` its blurred images and ``ids`` the
    pairs' places in both; ``work`` holds the scratch arrays. Every reduction
    runs over one pair's own data.
    """
    m = len(p)
    height, width = grid.height, grid.width
    den, u, v = work.f32[:3, :m]
    template = np.take(templates, ids, axis=0, out=work.f32[14, :m])
    pc = p[:, :, None, None]
    shape = (m, height, width)
    np.add(pc[:, 6] * grid.cols, pc[:, 7] * grid.rows + 1.0, out=den.reshape(shape))
    np.add(pc[:, 0] * grid.cols, pc[:, 1] * grid.rows + pc[:, 2], out=u.reshape(shape))
    u /= den
    np.add(pc[:, 3] * grid.cols, pc[:, 4] * grid.rows + pc[:, 5], out=v.reshape(shape))
    v /= den
    # The pixels that OpenCV's INTER_NEAREST warp of its all-ones mask keeps: rint(u, v) inside.
    mask = work.mask[:m]
    np.greater_equal(u, -0.5, out=mask)
    mask &= u < width - 0.5
    mask &= v >= -0.5
    mask &= v < height - 0.5
    warped, grad_x, grad_y = sampler.sample(ids, u, v, work)

    # Masked means, variances and correlation in float64, like OpenCV's meanStdDev and dot.
    zm_i, zm_t, scratch = work.f64[:, :m]
    count = mask.sum(axis=1)
    np.multiply(warped, mask, out=zm_i)
    np.multiply(template, mask, out=zm_t)
    mean_i = zm_i.sum(axis=1) / count
    mean_t = zm_t.sum(axis=1) / count
    zm_i -= mean_i[:, None]
    zm_i *= mask
    zm_t -= mean_t[:, None]
    zm_t *= mask
    norm_i2 = np.multiply(zm_i, zm_i, out=scratch).sum(axis=1)
    correlation = np.multiply(zm_t, zm_i, out=scratch).sum(axis=1)
    rho = correlation / np.sqrt(norm_i2 * np.multiply(zm_t, zm_t, out=scratch).sum(axis=1))

    # OpenCV subtracts the mean from the masked pixels only; the Jacobian uses every pixel.
    image_zm, template_zm = work.f32[3:5, :m]
    np.multiply(mask, mean_i.astype(np.float32)[:, None], out=image_zm)
    np.subtract(warped, image_zm, out=image_zm)
    np.copyto(template_zm, zm_t, casting="same_kind")
    a = np.divide(grad_x, den, out=grad_x)
    b = np.divide(grad_y, den, out=grad_y)
    u *= a
    v *= b
    u += v
    c = np.negative(u, out=u)
    products = work.products[:m]
    for k, (s, t) in enumerate(((a, a), (a, b), (a, c), (b, b), (b, c), (c, c))):
        np.multiply(s, t, out=products[:, k])
    for k, s in enumerate((a, b, c)):
        np.multiply(s, image_zm, out=products[:, 6 + k])
        np.multiply(s, template_zm, out=products[:, 9 + k])
    moments = grid.moments(products)
    hessian = moments[:, _HESSIAN_ROW, _HESSIAN_COL]
    image_proj = moments[:, 6 + _SOURCE, _PROJECTION_COL]
    template_proj = moments[:, 9 + _SOURCE, _PROJECTION_COL]
    solved = _solve(hessian, np.stack([image_proj, template_proj], axis=2))
    image_proj_hessian, template_proj_hessian = solved[..., 0], solved[..., 1]
    lambda_n = norm_i2 - (image_proj * image_proj_hessian).sum(axis=1)
    lambda_d = correlation - (template_proj * image_proj_hessian).sum(axis=1)
    # H^-1 J^T (lambda * template_zm - image_zm), by linearity of the projection.
    delta = (lambda_n / lambda_d)[:, None] * template_proj_hessian - image_proj_hessian
    status = np.where(np.isnan(rho), _ECC_NAN, np.where(lambda_d > 0, _ECC_OK, _ECC_MINIMISES)).astype(np.int8)
    return p + delta.astype(np.float32), rho, status


def _ecc_level(
    templates: np.ndarray, images: np.ndarray, starts: np.ndarray, level: _Level
) -> tuple[np.ndarray, np.ndarray]:
    """ECC homographies with ``template(p) ~ image(H p)`` for N pairs of one pyramid level.

    ``templates`` and ``images`` are N x H x W float32, ``starts`` N x 3 x 3.
    Returns the float32 homographies and a status per pair (``_ECC_OK`` or
    the reason ECC stopped without a result, where OpenCV raises).

    One iteration per pair is OpenCV's ``findTransformECCWithMask`` for
    ``MOTION_HOMOGRAPHY``: both images blurred with ``cv2.GaussianBlur(size,
    0)``; central-difference gradients of the image; the image and its
    gradients warped bilinearly (zero outside), the pixels whose nearest
    source pixel lies inside counted; zero-mean correlation ``rho``; the
    Gauss-Newton step with OpenCV's illumination factor lambda; float32
    parameters. Here the arithmetic runs in float32 / float64 NumPy over
    blocks of pairs, and a pair stops after the iteration whose correlation
    gained less than ``epsilon``, or whose update moved no image corner by
    ``warp_tolerance`` pixels or more, or after ``max_iterations``.
    Identical images starting at the identity stay there (their correlation
    is already 1).
    """
    n, height, width = templates.shape
    grid = _Grid.of(height, width)
    params = starts.reshape(n, 9)[:, :8].astype(np.float32)
    status = np.full(n, _ECC_OK, dtype=np.int8)
    template = _blur(templates, level.gauss_filt_size).reshape(n, -1)
    sampler = _Sampler(_blur(images, level.gauss_filt_size))
    rho = np.full(n, -1.0)
    flat = templates.reshape(n, -1)
    settled = (
        (flat == images.reshape(n, -1)).all(axis=1)
        & (flat.max(axis=1) > flat.min(axis=1))
        & (params == np.eye(3, dtype=np.float32).reshape(9)[:8]).all(axis=1)
    )
    active = np.flatnonzero(~settled)
    block = max(1, _BLOCK_PIXELS // (height * width))
    work = _Workspace(min(block, n), height * width, sampler.remap)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(level.max_iterations):
            if active.size == 0:
                break
            keep = np.zeros(active.size, dtype=bool)
            for start in range(0, active.size, block):
                ids = active[start : start + block]
                p = params[ids]
                updated, new_rho, new_status = _ecc_step(p, template, sampler, ids, grid, work)
                ok = new_status == _ECC_OK
                status[ids] = new_status
                params[ids[ok]] = updated[ok]
                gain = np.abs(new_rho - rho[ids])
                rho[ids] = new_rho
                going = ok & (gain >= level.epsilon)
                if level.warp_tolerance > 0:
                    (x0, y0), (x1, y1) = grid.corner_positions(p), grid.corner_positions(updated)
                    moved = np.maximum(np.abs(x1 - x0), np.abs(y1 - y0)).max(axis=1)
                    going &= ~(moved < level.warp_tolerance)
                keep[start : start + block] = going
            active = active[keep]

    warps = np.concatenate([params, np.ones((n, 1), np.float32)], axis=1).reshape(n, 3, 3)
    return warps, status


def _solve(matrices: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """``inv(matrices[i]) @ rhs[i]``; zeros for a singular matrix, as OpenCV's ``Mat::inv`` gives."""
    try:
        return np.linalg.solve(matrices, rhs)
    except np.linalg.LinAlgError:
        out = np.zeros_like(rhs)
        for i, (matrix, right) in enumerate(zip(matrices, rhs)):
            try:
                out[i] = np.linalg.solve(matrix, right)
            except np.linalg.LinAlgError:
                pass
        return out


def _pyramid(images: np.ndarray) -> np.ndarray:
    """``cv2.pyrDown`` of each image: the next coarser pyramid level."""
    return np.stack([cv2.pyrDown(image) for image in images])


def _ecc_pyramid(templates: np.ndarray, images: np.ndarray, settings: _EccSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Coarse-to-fine ECC for N pairs of float32 luminance images; (homographies, converged, messages).

    The coarsest level starts from the identity; each finer level starts from
    the coarser result in its own pixel units, ``S H S^-1`` with
    ``S = diag(2, 2, 1)``. A level where ECC stops without a result passes its
    start on unchanged and says why in the message; a pair converged when
    some level returned.
    """
    n = len(templates)
    levels = [(templates, images)]
    for _ in range(settings.pyramid_levels - 1):
        levels.append((_pyramid(levels[-1][0]), _pyramid(levels[-1][1])))
    homographies = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    converged = np.zeros(n, dtype=bool)
    errors: list[list[str]] = [[] for _ in range(n)]
    for level in reversed(range(settings.pyramid_levels)):
        if level < settings.pyramid_levels - 1:
            homographies = _UPSCALE @ homographies @ _DOWNSCALE
        level_templates, level_images = levels[level]
        warps, status = _ecc_level(
            level_templates, level_images, homographies, settings.fine if level == 0 else settings.coarse
        )
        ok = status == _ECC_OK
        homographies[ok] = warps[ok].astype(np.float64)
        converged |= ok
        height, width = level_templates.shape[1:]
        for i in np.flatnonzero(~ok):
            errors[i].append(f"level {level} ({height} x {width}): {_ECC_ERRORS[int(status[i])]}")
    return homographies, converged, ["; ".join(e) for e in errors]


def _ecc_opencv(templates: np.ndarray, images: np.ndarray, settings: _EccSettings) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One ``cv2.findTransformECC`` per pair at full resolution from the identity (``pyramid_levels=1``)."""
    n = len(templates)
    homographies = np.broadcast_to(np.eye(3), (n, 3, 3)).copy()
    converged = np.zeros(n, dtype=bool)
    messages = [""] * n
    fine = settings.fine
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, fine.max_iterations, fine.epsilon)
    for i, (template, image) in enumerate(zip(templates, images)):
        try:
            _, warp = cv2.findTransformECC(
                template, image, np.eye(3, dtype=np.float32), cv2.MOTION_HOMOGRAPHY, criteria, None,
                fine.gauss_filt_size,
            )
        except cv2.error as error:
            height, width = template.shape
            messages[i] = f"level 0 ({height} x {width}): {str(error).strip()}"
            continue
        homographies[i] = warp.astype(np.float64)
        converged[i] = True
    return homographies, converged, messages


@dataclass(frozen=True)
class _Aligned:
    """:class:`Alignment` of N pairs: N x 3 x 3 homographies, aligned images, converged flags, messages."""

    homographies: np.ndarray
    aligned: np.ndarray
    converged: np.ndarray
    messages: list[str]


def _align_batch(x_advs: np.ndarray, xs: np.ndarray, settings: _EccSettings) -> _Aligned:
    """Eq. 1 for N validated float64 pairs of one shape, ``N x H x W`` or ``N x H x W x 3``."""
    height, width = x_advs.shape[1:3]
    colour = x_advs.ndim == 4
    templates, images = _luminance(xs, colour), _luminance(x_advs, colour)
    ecc = _ecc_pyramid if settings.pyramid_levels > 1 else _ecc_opencv
    homographies, converged, messages = ecc(templates, images, settings)
    aligned = np.empty_like(x_advs)
    moved = ~(homographies == np.eye(3)).all(axis=(1, 2))
    aligned[~moved] = x_advs[~moved]
    for i in np.flatnonzero(moved):
        cv2.warpPerspective(
            x_advs[i], homographies[i], (width, height), dst=aligned[i],
            flags=settings.interpolation + cv2.WARP_INVERSE_MAP,
        )
        # Bicubic resampling overshoots next to sharp edges; psi must stay an image in [0, 255].
        np.clip(aligned[i], 0.0, _PIXEL_MAX, out=aligned[i])
    # ECC is maximised locally and on pre-blurred images, so its optimum can score below the start:
    # keep whichever of the two has the higher ECC of Eq. 1 itself (the identity on ties), both
    # measured on the pixels that the warp fills from inside x_adv.
    idx = np.flatnonzero(moved)
    if idx.size:
        inside = _inside(homographies[idx], height, width)
        warped_corr, identity_corr = _correlations(
            templates[idx], [_luminance(aligned[idx], colour), images[idx]], inside
        )
        better = warped_corr > identity_corr
        worse = idx[~better]
        homographies[worse] = np.eye(3)
        aligned[worse] = x_advs[worse]
    return _Aligned(homographies, aligned, converged, messages)


def align(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    epsilon: float = DEFAULT_EPSILON,
    warp_tolerance: float | None = None,
    gauss_filt_size: int = DEFAULT_GAUSS_FILT_SIZE,
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> Alignment:
    """Align ``x_adv`` onto ``x`` with an ECC homography: ``psi(x_adv, x)`` of Eq. 1.

    ECC returns ``H`` with ``x(p) ~ x_adv(H p)``: ``H`` maps coordinates of
    the template ``x`` to coordinates of ``x_adv``. Warping ``x_adv`` with
    ``cv2.warpPerspective(..., WARP_INVERSE_MAP)`` therefore samples ``x_adv``
    at ``H p`` for every pixel ``p`` of ``x``; the result is clipped to
    [0, 255]. Colour images are aligned on their BT.601 luminance (0.299 R +
    0.587 G + 0.114 B) and all three channels are warped.

    Coarse to fine (``pyramid_levels``): ECC starts from the identity on the
    coarsest ``cv2.pyrDown`` pair (7 x 7 pre-blur, at most 20 iterations,
    epsilon at least 1e-5) and each finer level refines the result scaled to
    its pixels, ``H_fine = S H_coarse S^-1`` with ``S = diag(2, 2, 1)``; the
    full-resolution level uses ``max_iterations``, ``epsilon`` and
    ``gauss_filt_size``. Every level iterates as OpenCV's
    ``findTransformECC`` does and also stops once an update moves no image
    corner by ``warp_tolerance`` pixels (of that level) or more. Identical
    images stay at the identity. Of the resulting ``H`` and the identity, the
    one whose warp has the higher correlation coefficient with ``x`` at full
    resolution (Eq. 1's objective; the identity on ties) is kept.

    ``pyramid_levels=1`` is the plain reading: one ``cv2.findTransformECC``
    call at full resolution from the identity (its own stopping rules,
    ``max_iterations`` and ``epsilon``), then the same choice against the
    identity.

    A level where ECC stops without a result (the update would minimise the
    correlation, or an image has no variance, e.g. a blank one: where OpenCV
    raises) hands its start to the next level and its reason to
    ``message``. When every level fails the alignment is the identity:
    ``aligned`` is ``x_adv`` and ``converged`` is False.

    Parameters
    ----------
    x_adv : numpy.ndarray
        Perturbed image x~, H x W or H x W x 3, uint8 or float in [0, 255].
    x : numpy.ndarray
        Original image, same shape as ``x_adv``.
    max_iterations : int
        ECC iteration cap at full resolution (``TERM_CRITERIA_COUNT``).
    epsilon : float
        ECC stops once the correlation coefficient gains less than this
        between iterations (``TERM_CRITERIA_EPS``).
    warp_tolerance : float or None
        ECC stops once an update moves none of the image corners by this many
        pixels; None means :data:`DEFAULT_WARP_TOLERANCE` (0.005 px), 0 turns
        the rule off. Only for ``pyramid_levels >= 2``: OpenCV's own ECC
        (``pyramid_levels=1``) has no such rule.
    gauss_filt_size : int
        Odd size of the Gaussian blur ECC applies to both full-resolution
        images first.
    pyramid_levels : int
        Levels of the coarse-to-fine ECC, each half the size of the one
        above; 1 runs OpenCV's ECC once, at full resolution, from the
        identity. Keep the coarsest level well above 7 x 7 pixels: smaller
        ones cannot pin down a homography and mislead the finer levels.
    interpolation : str
        ``"cubic"`` or ``"linear"``: resampling of ``x_adv`` into
        ``psi(x_adv, x)``. The paper does not say; bilinear blurs thin
        strokes (see :data:`DEFAULT_INTERPOLATION`).

    Returns
    -------
    Alignment
    """
    settings = _ecc_settings(max_iterations, epsilon, warp_tolerance, gauss_filt_size, pyramid_levels, interpolation)
    x_adv = _image(x_adv, "x_adv")
    x = _image(x, "x")
    _same_shape(x_adv, x, ("x_adv", "x"))
    result = _align_batch(x_adv.astype(np.float64)[None], x.astype(np.float64)[None], settings)
    return Alignment(
        homography=result.homographies[0],
        aligned=result.aligned[0],
        converged=bool(result.converged[0]),
        message=result.messages[0],
    )


def _pass_chunk(x_advs: np.ndarray, xs: np.ndarray, settings: _EccSettings) -> tuple[_Aligned, np.ndarray]:
    """Eq. 4 for a chunk of validated pairs; the unit of work of pass_score and pass_scores."""
    x_advs = np.ascontiguousarray(x_advs, dtype=np.float64)
    xs = np.ascontiguousarray(xs, dtype=np.float64)
    alignment = _align_batch(x_advs, xs, settings)
    return alignment, _mean_ssim(alignment.aligned, xs)


def pass_score(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    epsilon: float = DEFAULT_EPSILON,
    warp_tolerance: float | None = None,
    gauss_filt_size: int = DEFAULT_GAUSS_FILT_SIZE,
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> PassResult:
    """PASS of one pair (Eq. 4): ``SSIM(psi(x_adv, x), x)``.

    The alignment ``psi`` is :func:`align` (Eq. 1) and SSIM is :func:`ssim`
    with the paper's settings (Eq. 2-3). When ECC fails at every pyramid
    level the score is the unaligned ``SSIM(x_adv, x)`` and ``converged`` is
    False; numerical trouble never raises, invalid input does (ValueError).
    For many pairs use :func:`pass_scores`, which gives the same scores.

    Parameters
    ----------
    x_adv : numpy.ndarray
        Perturbed image x~, H x W or H x W x 3 (H, W >= 11), uint8 or float
        in [0, 255].
    x : numpy.ndarray
        Original image, same shape as ``x_adv``.
    max_iterations, epsilon, warp_tolerance, gauss_filt_size, pyramid_levels, interpolation
        ECC settings, see :func:`align`.

    Returns
    -------
    PassResult
        ``float(result)`` is the score.
    """
    settings = _ecc_settings(max_iterations, epsilon, warp_tolerance, gauss_filt_size, pyramid_levels, interpolation)
    x_adv = _image(x_adv, "x_adv", min_side=_WIN_SIZE)
    x = _image(x, "x", min_side=_WIN_SIZE)
    _same_shape(x_adv, x, ("x_adv", "x"))
    alignment, scores = _pass_chunk(x_adv[None], x[None], settings)
    return PassResult(
        score=float(scores[0]),
        converged=bool(alignment.converged[0]),
        homography=alignment.homographies[0],
        message=alignment.messages[0],
    )


def _batch(array: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim not in (3, 4):
        raise ValueError(
            f"{name} must be a batch N x H x W or N x H x W x 3, got {arr.ndim}-D shape {arr.shape}; "
            f"use pass_score for one pair, or {name}[None] for a batch of one"
        )
    _check_image_shape(arr.shape[1:], f"each image of {name}", min_side=_WIN_SIZE)
    _check_pixels(arr, name, _PIXEL_MAX)
    return arr


def pass_scores(
    x_advs: np.ndarray,
    xs: np.ndarray,
    *,
    workers: int | None = None,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    epsilon: float = DEFAULT_EPSILON,
    warp_tolerance: float | None = None,
    gauss_filt_size: int = DEFAULT_GAUSS_FILT_SIZE,
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> PassBatch:
    """PASS (Eq. 4) of many pairs, vectorised over the batch and spread over workers.

    Each pair's score is exactly (bit for bit) what :func:`pass_score` gives
    for it, whatever the batch and ``workers``: ECC and SSIM run on whole
    chunks of pairs at once, but no pair's arithmetic depends on the other
    pairs of its chunk.

    Batches of at least 2^18 pixels (N x H x W; about 330 MNIST pairs) are cut
    into ``workers`` chunks (a multiple of ``workers`` where the images are
    large) and spread over a ``concurrent.futures`` pool. Images smaller than
    64 x 64 pixels go to worker processes: their work is many short NumPy
    calls, and threads would queue for the GIL between them (two threads ran
    no faster than one on MNIST). The process pool starts its workers from
    multiprocessing's fork server, preloading this module (about 15 ms per
    call; the server itself starts once per Python process, about 0.2 s), or
    spawns them where there is no fork server. A worker process imports the
    caller's main script again, so a script without the usual
    ``if __name__ == "__main__":`` guard gets threads instead (same scores,
    slower). Larger images go to
    threads, whose NumPy and OpenCV calls on whole images release the GIL for
    long enough. Smaller batches, ``workers=1`` and daemonic processes (which
    cannot have children, e.g. Dask workers) compute in the calling process.

    Parameters
    ----------
    x_advs : numpy.ndarray
        N x H x W or N x H x W x 3 perturbed images, uint8 or float in [0, 255].
    xs : numpy.ndarray
        The originals: the same shape as ``x_advs``, or one image of shape
        ``x_advs.shape[1:]`` compared with every ``x_advs[i]``.
    workers : int or None
        Worker processes (threads for images of 64 x 64 pixels or more); None
        uses ``os.cpu_count()``, 1 computes in the calling process.
    max_iterations, epsilon, warp_tolerance, gauss_filt_size, pyramid_levels, interpolation
        ECC settings, see :func:`align`.

    Returns
    -------
    PassBatch
    """
    if workers is not None:
        _check_int(workers, "workers", minimum=1)
    settings = _ecc_settings(max_iterations, epsilon, warp_tolerance, gauss_filt_size, pyramid_levels, interpolation)
    x_advs = _batch(x_advs, "x_advs")
    xs = np.asarray(xs)
    if xs.ndim < x_advs.ndim:
        xs = _image(xs, "xs", min_side=_WIN_SIZE)
        if xs.shape != x_advs.shape[1:]:
            raise ValueError(
                f"a single xs must have the shape of one x_advs image {x_advs.shape[1:]}, got {xs.shape}"
            )
        xs = np.broadcast_to(xs, x_advs.shape)
    else:
        xs = _batch(xs, "xs")
        _same_shape(x_advs, xs, ("x_advs", "xs"))

    n = len(x_advs)
    pixels = n * x_advs.shape[1] * x_advs.shape[2]
    workers = workers or os.cpu_count() or 1
    if pixels < _POOL_PIXELS or multiprocessing.current_process().daemon:
        workers = 1
    # Contiguous chunks, as few as there are workers unless cache and memory ask for more (then a multiple
    # of the workers): a chunk's ECC iterates until its slowest pair stops, so large chunks spend the
    # least on those tails, but the arrays of large images are best kept in cache.
    chunks = min(n, workers * -(-x_advs.size // (workers * _CHUNK_VALUES)))
    bounds = np.linspace(0, n, chunks + 1).astype(int)
    pieces = [(x_advs[lo:hi], xs[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
    if workers == 1:
        results = [_chunk_scores(advs, originals, settings) for advs, originals in pieces]
    else:
        if x_advs.shape[1] * x_advs.shape[2] >= _THREAD_PIXELS or not _main_is_guarded():
            pool = ThreadPoolExecutor(max_workers=min(workers, chunks))
        else:
            pool = ProcessPoolExecutor(max_workers=min(workers, chunks), mp_context=_pool_context())
        with pool:
            results = list(pool.map(_chunk_scores, *zip(*pieces), itertools.repeat(settings)))
    return PassBatch(
        scores=np.concatenate([scores for scores, _ in results] + [np.zeros(0)]),
        converged=np.concatenate([converged for _, converged in results] + [np.zeros(0, dtype=bool)]),
    )


def _chunk_scores(x_advs: np.ndarray, xs: np.ndarray, settings: _EccSettings) -> tuple[np.ndarray, np.ndarray]:
    """Scores and convergence flags of a chunk: the task of a pass_scores worker."""
    alignment, scores = _pass_chunk(x_advs, xs, settings)
    return scores, alignment.converged


def _main_is_guarded() -> bool:
    """Whether worker processes may import the main module: run with -c, -m or interactively, or a script
    that guards its work with ``if __name__ == "__main__":`` (it would otherwise run again in each worker)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        return True
    try:
        return "__main__" in Path(path).read_text(errors="replace")
    except OSError:
        return False


def _pool_context() -> multiprocessing.context.BaseContext:
    """Multiprocessing's fork server, preloading this module so that a worker starts in milliseconds; spawn
    where there is none. Not plain fork: OpenCV's thread pool does not survive a fork."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        # The fork server is the process's own (multiprocessing keeps one); the preload list counts only
        # until it starts, so a server someone else started keeps theirs and workers import on demand.
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")
