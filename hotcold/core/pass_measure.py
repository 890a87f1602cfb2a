"""Perceptual adversarial similarity score (PASS), Rozsa et al. 2016, Sec. 3.

PASS measures how plausible a perturbed image ``x_adv`` (x~ in the paper) is as
another view of the original ``x``, in two stages:

1. Alignment (Eq. 1). A homography ``H`` maps ``x_adv`` onto ``x`` by
   maximising the enhanced correlation coefficient (ECC) of Evangelidis and
   Psarakis, i.e. minimising::

       || xbar / ||xbar||  -  psibar(x_adv, x) / ||psibar(x_adv, x)|| ||

   where a bar is the zero-mean image and ``psi(x_adv, x)`` is ``x_adv`` warped
   by ``H``, i.e. maximising the correlation coefficient of ``x`` and
   ``psi(x_adv, x)``. OpenCV's ``findTransformECC`` (``MOTION_HOMOGRAPHY``)
   does the optimisation, coarse to fine: from the identity on a 2x
   downsampled pair, then refined at full resolution. The result, or the
   identity where that has the higher ECC at full resolution, is ``H``; see
   :func:`align`.

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

When ECC fails at every level (OpenCV raises) the alignment is the identity,
PASS is the unaligned SSIM and the result says ``converged=False``. ECC
defaults (300 iterations, epsilon 1e-8, 5 x 5 pre-blur, 2 pyramid levels,
bicubic warp) and their measurements on real MNIST: docs/pass.md.

Images are single arrays H x W or H x W x 3 (channels last), uint8 or float
with values in [0, 255]; batches (:func:`pass_scores`) add a leading N axis.
"""
from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = [
    "DEFAULT_EPSILON",
    "DEFAULT_GAUSS_FILT_SIZE",
    "DEFAULT_INTERPOLATION",
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_PYRAMID_LEVELS",
    "Alignment",
    "PassBatch",
    "PassResult",
    "align",
    "pass_score",
    "pass_scores",
    "ssim",
]

DEFAULT_MAX_ITERATIONS = 300
"""ECC iteration cap (``TERM_CRITERIA_COUNT``); most pairs stop earlier on ``epsilon``."""
DEFAULT_EPSILON = 1e-8
"""ECC stops once the correlation coefficient gains less than this (``TERM_CRITERIA_EPS``).

Against a near-exhaustive 5000 iterations / 1e-10, (300, 1e-8) moved no PASS
by more than 1.1e-4 on 200 perturbed MNIST digits, where (100, 1e-6) moved
smooth perturbations by up to 0.023; see docs/pass.md."""
DEFAULT_GAUSS_FILT_SIZE = 5
"""Gaussian pre-blur that ECC applies to both images at full resolution:
OpenCV's default, and the fixed 5 x 5 blur of OpenCV 3, current when the paper
was written. A larger full-resolution blur aligns bigger shifts but lets
smooth perturbations pull the homography away; the pyramid
(:data:`DEFAULT_PYRAMID_LEVELS`) widens the basin instead (see docs/pass.md)."""
DEFAULT_PYRAMID_LEVELS = 2
"""Levels of the coarse-to-fine ECC: the full-resolution pair plus one 2x
downsampled pair (``cv2.pyrDown``). 1 runs ECC at full resolution only, from
the identity. On 200 real MNIST test digits a 2 px shift keeps PASS > 0.95 in
100 % of cases with 2 levels and 93 % with 1; 3 levels are worse on 28 x 28
images (see docs/pass.md)."""
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
_COARSE_MAX_ITERATIONS = 50
_COARSE_EPSILON = 1e-5
# cv2.pyrDown samples the blurred image at even pixels: coarse pixel p is fine pixel 2 p.
_UPSCALE = np.diag([2.0, 2.0, 1.0])
_DOWNSCALE = np.diag([0.5, 0.5, 1.0])
# SSIM as in Sec. 3 and Wang et al. 2004: an 11 x 11 Gaussian window of sigma 1.5, K1 = 0.01, K2 = 0.03.
_SIGMA = 1.5
_WIN_SIZE = 11
_K1 = 0.01
_K2 = 0.03
# ITU-R BT.601 luma weights for R, G, B.
_LUMA = np.array([0.299, 0.587, 0.114])


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
        False when OpenCV's ECC raised at every pyramid level (no
        convergence, or an image without variance such as a blank one).
    message : str
        The OpenCV errors of the pyramid levels where ECC raised, e.g.
        ``"level 1 (14 x 14): OpenCV(...) ..."``, joined by ``"; "``; ``""``
        when ECC returned at every level.
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
        The OpenCV errors of the pyramid levels where ECC raised (see
        :class:`Alignment`), ``""`` when none did.
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
class _EccSettings:
    criteria: tuple[int, int, float]
    coarse_criteria: tuple[int, int, float]
    gauss_filt_size: int
    pyramid_levels: int
    interpolation: int


def _check_int(value: object, name: str, *, minimum: int, odd: bool = False) -> None:
    is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not is_int or value < minimum or (odd and value % 2 == 0):
        kind = "an odd integer" if odd else "an integer"
        raise ValueError(f"{name} must be {kind} >= {minimum}, got {value!r}")


def _ecc_settings(
    max_iterations: int, epsilon: float, gauss_filt_size: int, pyramid_levels: int, interpolation: str
) -> _EccSettings:
    _check_int(max_iterations, "max_iterations", minimum=1)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(
            f"epsilon must be a finite number >= 0, got {epsilon!r}; "
            "use 0 to always run max_iterations iterations"
        )
    _check_int(gauss_filt_size, "gauss_filt_size", minimum=1, odd=True)
    _check_int(pyramid_levels, "pyramid_levels", minimum=1)
    if interpolation not in _INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}, got {interpolation!r}")
    kind = cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS
    return _EccSettings(
        criteria=(kind, int(max_iterations), float(epsilon)),
        coarse_criteria=(kind, min(int(max_iterations), _COARSE_MAX_ITERATIONS), max(float(epsilon), _COARSE_EPSILON)),
        gauss_filt_size=int(gauss_filt_size),
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
) -> float:
    """SSIM (Eq. 3) of validated float64 images of one shape, H x W or H x W x C.

    RSSIM (Eq. 2) is evaluated at every pixel whose window lies inside the
    image and averaged over those pixels (and the channels).
    """
    window = _gaussian_window(win_size, sigma)

    def local_mean(image: np.ndarray) -> np.ndarray:
        # The border mode is irrelevant: the rows and columns it touches are cropped below.
        return cv2.sepFilter2D(image, cv2.CV_64F, window, window, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = local_mean(a), local_mean(b)
    var_a = local_mean(a * a) - mu_a * mu_a
    var_b = local_mean(b * b) - mu_b * mu_b
    cov = local_mean(a * b) - mu_a * mu_b
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    rssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    pad = (win_size - 1) // 2
    return float(rssim[pad : rssim.shape[0] - pad, pad : rssim.shape[1] - pad].mean())


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
    sigma=1.5, use_sample_covariance=False, data_range=255)``.

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
    return _mean_ssim(
        a.astype(np.float64), b.astype(np.float64), data_range=data_range, sigma=sigma, win_size=win_size, k1=k1, k2=k2
    )


def _luminance(image: np.ndarray) -> np.ndarray:
    """Float32 single-channel image for ECC: BT.601 luma of colour images."""
    if image.ndim == 3:
        image = image[..., 0] * _LUMA[0] + image[..., 1] * _LUMA[1] + image[..., 2] * _LUMA[2]
    return image.astype(np.float32)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation coefficient of two pixel sets: the ECC that Eq. 1 maximises (-inf without variance)."""
    if a.size < 2:
        return -np.inf
    a = a - a.mean(dtype=np.float64)
    b = b - b.mean(dtype=np.float64)
    # Elementwise sums rather than BLAS dot products: BLAS threads would compete with pass_scores' pool.
    norm = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / norm if norm > 0 else -np.inf


def _inside(homography: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Pixels p whose warped position H p has its whole 4 x 4 bicubic footprint inside the image.

    As in ECC itself (and OpenCV's ``findTransformECC``), pixels warped in
    from outside the image take no part in the correlation.
    """
    height, width = shape[:2]
    cols = np.arange(width, dtype=np.float64)[None, :]
    rows = np.arange(height, dtype=np.float64)[:, None]
    u, v, w = (h[0] * cols + h[1] * rows + h[2] for h in homography)
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = u / w, v / w
    return (w > 0) & (u >= 1) & (u <= width - 2) & (v >= 1) & (v <= height - 2)


def _ecc_pyramid(template: np.ndarray, image: np.ndarray, settings: _EccSettings) -> tuple[np.ndarray | None, str]:
    """Coarse-to-fine ECC homography with ``template(p) ~ image(H p)``; None when every level raised.

    The coarsest level starts from the identity; each finer level starts from
    the coarser result in its own pixel units, ``S H S^-1`` with
    ``S = diag(2, 2, 1)``. A level where OpenCV raises passes its start on
    unchanged; the errors come back as one message.
    """
    templates, images = [template], [image]
    for _ in range(settings.pyramid_levels - 1):
        templates.append(cv2.pyrDown(templates[-1]))
        images.append(cv2.pyrDown(images[-1]))
    homography = np.eye(3)
    converged = False
    errors = []
    for level in reversed(range(settings.pyramid_levels)):
        if level < settings.pyramid_levels - 1:
            homography = _UPSCALE @ homography @ _DOWNSCALE
        finest = level == 0
        try:
            _, warp = cv2.findTransformECC(
                templates[level],
                images[level],
                homography.astype(np.float32),
                cv2.MOTION_HOMOGRAPHY,
                settings.criteria if finest else settings.coarse_criteria,
                None,
                settings.gauss_filt_size if finest else _COARSE_GAUSS_FILT_SIZE,
            )
        except cv2.error as error:
            height, width = templates[level].shape
            errors.append(f"level {level} ({height} x {width}): {str(error).strip()}")
            continue
        homography = warp.astype(np.float64)
        converged = True
    return (homography if converged else None), "; ".join(errors)


def _align(x_adv: np.ndarray, x: np.ndarray, settings: _EccSettings) -> Alignment:
    """Eq. 1 on validated float64 images of one shape."""
    template, image = _luminance(x), _luminance(x_adv)
    homography, message = _ecc_pyramid(template, image, settings)
    if homography is None:
        return Alignment(homography=np.eye(3), aligned=x_adv, converged=False, message=message)
    height, width = x.shape[:2]
    aligned = cv2.warpPerspective(
        x_adv, homography, (width, height), flags=settings.interpolation + cv2.WARP_INVERSE_MAP
    )
    # Bicubic resampling overshoots next to sharp edges; psi must stay an image in [0, 255].
    np.clip(aligned, 0.0, _PIXEL_MAX, out=aligned)
    # ECC is maximised locally and on pre-blurred images, so its optimum can score below the start:
    # keep whichever of the two has the higher ECC of Eq. 1 itself (the identity on ties), both
    # measured on the pixels that the warp fills from inside x_adv.
    inside = _inside(homography, x.shape)
    if _correlation(template[inside], _luminance(aligned)[inside]) <= _correlation(template[inside], image[inside]):
        return Alignment(homography=np.eye(3), aligned=x_adv, converged=True, message=message)
    return Alignment(homography=homography, aligned=aligned, converged=True, message=message)


def align(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    epsilon: float = DEFAULT_EPSILON,
    gauss_filt_size: int = DEFAULT_GAUSS_FILT_SIZE,
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> Alignment:
    """Align ``x_adv`` onto ``x`` with an ECC homography: ``psi(x_adv, x)`` of Eq. 1.

    ``cv2.findTransformECC(x, x_adv, ...)`` with ``MOTION_HOMOGRAPHY`` returns
    ``H`` with ``x(p) ~ x_adv(H p)``: ``H`` maps coordinates of the template
    ``x`` to coordinates of ``x_adv``. Warping ``x_adv`` with
    ``cv2.warpPerspective(..., WARP_INVERSE_MAP)`` therefore samples ``x_adv``
    at ``H p`` for every pixel ``p`` of ``x``; the result is clipped to
    [0, 255]. Colour images are aligned on their BT.601 luminance (0.299 R +
    0.587 G + 0.114 B) and all three channels are warped.

    Coarse to fine (``pyramid_levels``): ECC starts from the identity on the
    coarsest ``cv2.pyrDown`` pair (7 x 7 pre-blur, at most 50 iterations,
    epsilon at least 1e-5) and each finer level refines the result scaled to
    its pixels, ``H_fine = S H_coarse S^-1`` with ``S = diag(2, 2, 1)``; the
    full-resolution level uses ``max_iterations``, ``epsilon`` and
    ``gauss_filt_size``. Of this ``H`` and the identity, the one whose warp
    has the higher correlation coefficient with ``x`` at full resolution
    (Eq. 1's objective; the identity on ties) is kept. To match a plain
    single-level ECC from the identity, pass ``pyramid_levels=1``.

    A level where OpenCV raises (no convergence, or an image without
    variance, e.g. a blank one) hands its start to the next level and its
    error to ``message``. When every level raises the alignment is the
    identity: ``aligned`` is ``x_adv`` and ``converged`` is False.

    Parameters
    ----------
    x_adv : numpy.ndarray
        Perturbed image x~, H x W or H x W x 3, uint8 or float in [0, 255].
    x : numpy.ndarray
        Original image, same shape as ``x_adv``.
    max_iterations : int
        ECC iteration cap (``TERM_CRITERIA_COUNT``).
    epsilon : float
        ECC stops once the correlation coefficient gains less than this
        between iterations (``TERM_CRITERIA_EPS``).
    gauss_filt_size : int
        Odd size of the Gaussian blur ECC applies to both full-resolution
        images first.
    pyramid_levels : int
        Levels of the coarse-to-fine ECC, each half the size of the one
        above; 1 runs ECC once, at full resolution, from the identity. Keep
        the coarsest level well above 7 x 7 pixels: smaller ones cannot pin
        down a homography and mislead the finer levels.
    interpolation : str
        ``"cubic"`` or ``"linear"``: resampling of ``x_adv`` into
        ``psi(x_adv, x)``. The paper does not say; bilinear blurs thin
        strokes (see :data:`DEFAULT_INTERPOLATION`).

    Returns
    -------
    Alignment
    """
    settings = _ecc_settings(max_iterations, epsilon, gauss_filt_size, pyramid_levels, interpolation)
    x_adv = _image(x_adv, "x_adv")
    x = _image(x, "x")
    _same_shape(x_adv, x, ("x_adv", "x"))
    return _align(x_adv.astype(np.float64), x.astype(np.float64), settings)


def _pass_pair(x_adv: np.ndarray, x: np.ndarray, settings: _EccSettings) -> PassResult:
    """Eq. 4 for one validated pair; the unit of work of pass_score and pass_scores."""
    x_adv = np.asarray(x_adv, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    alignment = _align(x_adv, x, settings)
    score = _mean_ssim(alignment.aligned, x)
    return PassResult(
        score=score, converged=alignment.converged, homography=alignment.homography, message=alignment.message
    )


def pass_score(
    x_adv: np.ndarray,
    x: np.ndarray,
    *,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    epsilon: float = DEFAULT_EPSILON,
    gauss_filt_size: int = DEFAULT_GAUSS_FILT_SIZE,
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> PassResult:
    """PASS of one pair (Eq. 4): ``SSIM(psi(x_adv, x), x)``.

    The alignment ``psi`` is :func:`align` (Eq. 1) and SSIM is :func:`ssim`
    with the paper's settings (Eq. 2-3). When ECC fails at every pyramid
    level the score is the unaligned ``SSIM(x_adv, x)`` and ``converged`` is
    False; numerical trouble never raises, invalid input does (ValueError).

    Parameters
    ----------
    x_adv : numpy.ndarray
        Perturbed image x~, H x W or H x W x 3 (H, W >= 11), uint8 or float
        in [0, 255].
    x : numpy.ndarray
        Original image, same shape as ``x_adv``.
    max_iterations, epsilon, gauss_filt_size, pyramid_levels, interpolation
        ECC settings, see :func:`align`.

    Returns
    -------
    PassResult
        ``float(result)`` is the score.
    """
    settings = _ecc_settings(max_iterations, epsilon, gauss_filt_size, pyramid_levels, interpolation)
    x_adv = _image(x_adv, "x_adv", min_side=_WIN_SIZE)
    x = _image(x, "x", min_side=_WIN_SIZE)
    _same_shape(x_adv, x, ("x_adv", "x"))
    return _pass_pair(x_adv, x, settings)


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
    gauss_filt_size: int = DEFAULT_GAUSS_FILT_SIZE,
    pyramid_levels: int = DEFAULT_PYRAMID_LEVELS,
    interpolation: str = DEFAULT_INTERPOLATION,
) -> PassBatch:
    """PASS (Eq. 4) of many pairs, computed in a thread pool.

    Each pair is scored exactly as by :func:`pass_score`; OpenCV releases the
    GIL, so threads run the ECC alignments in parallel.

    Parameters
    ----------
    x_advs : numpy.ndarray
        N x H x W or N x H x W x 3 perturbed images, uint8 or float in [0, 255].
    xs : numpy.ndarray
        The originals: the same shape as ``x_advs``, or one image of shape
        ``x_advs.shape[1:]`` compared with every ``x_advs[i]``.
    workers : int or None
        Threads; None uses ``os.cpu_count()``.
    max_iterations, epsilon, gauss_filt_size, pyramid_levels, interpolation
        ECC settings, see :func:`align`.

    Returns
    -------
    PassBatch
    """
    if workers is not None:
        _check_int(workers, "workers", minimum=1)
    settings = _ecc_settings(max_iterations, epsilon, gauss_filt_size, pyramid_levels, interpolation)
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

    with ThreadPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        results = list(pool.map(_pass_pair, x_advs, xs, itertools.repeat(settings)))
    return PassBatch(
        scores=np.array([r.score for r in results], dtype=np.float64),
        converged=np.array([r.converged for r in results], dtype=bool),
    )
