"""Generate adversarial images and hard positives with their metrics (Sec. 3-4).

For each chunk of images: keep those the net classifies as their label,
compute every direction once (:mod:`hotcold.directions`), run the batched line
search (:mod:`hotcold.search`), scale for hard positives, then score every
image with PASS (Eq. 4) and the perturbation metrics (:mod:`hotcold.metrics`).

Acceptance (Eq. 5): a minimal adversarial (scale 1) is accepted when
f(x~) != y and PASS(x~, x) >= tau. A hard positive (scale > 1) is accepted when
PASS(x~, x) >= tau ("hard positives are similarly constrained by a PASS
threshold"); it keeps the label y whether or not the net still misclassifies
it. ``tau=None`` accepts every image that the search found.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from hotcold.caffe_net import CaffeClassifier
from hotcold.directions import compute_directions
from hotcold.methods import Method, parse_methods, with_scales
from hotcold.metrics import perturbation_metrics
from hotcold.pass_measure import pass_scores
from hotcold.search import SearchSettings, hard_positives, line_search


@dataclass(frozen=True)
class GeneratedImage:
    """One generated image and its metrics.

    Attributes
    ----------
    method:
        Method name with scale, e.g. ``HC-D-1x1.05``.
    source_index:
        Index of the original in the ``images`` given to :func:`generate`.
    label:
        y, the original's label (the label a hard positive is trained with).
    predicted:
        f(x~), the net's label for the generated image.
    hot_class:
        The hot class t of HC methods, -1 for FGS / FGV.
    eps:
        The perturbation size used: scale * eps* in pixel levels (max |eta_hat| = 1).
    scale:
        1 for a minimal adversarial, > 1 for a hard positive.
    image:
        The uint8 image.
    pass_score, pass_converged:
        PASS(x~, x) (Eq. 4) and whether ECC alignment converged.
    l2, l2_per_pixel, linf, l2_input:
        Perturbation metrics, see :mod:`hotcold.metrics`.
    forward_passes:
        Candidates classified for this image: the line search's along its
        direction, plus one for a hard positive's own classification.
    accepted:
        Whether the image meets Eq. 5's criteria for ``tau``.
    """

    method: str
    source_index: int
    label: int
    predicted: int
    hot_class: int
    eps: float
    scale: float
    image: np.ndarray
    pass_score: float
    pass_converged: bool
    l2: float
    l2_per_pixel: float
    linf: float
    l2_input: float
    forward_passes: int
    accepted: bool


def generate(
    classifier: CaffeClassifier,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    methods: str | Iterable[str | Method],
    tau: float | None = None,
    scales: Sequence[float] = (1.0,),
    *,
    settings: SearchSettings = SearchSettings(),
    chunk_size: int = 128,
    keep_rejected: bool = False,
    pass_workers: int | None = None,
    progress: bool = False,
) -> Iterator[GeneratedImage]:
    """Yield generated images for every correctly classified image and method.

    Parameters
    ----------
    classifier:
        The Caffe network f.
    images, labels:
        uint8 ``N x H x W[ x C]`` originals and their labels y. Images the net
        misclassifies are skipped (an adversarial needs a correct original).
    methods:
        Names such as ``FGS``, ``FGV``, ``HC-D-1..9``, ``HC-S-1``, ``HC-D-1x1.05``.
    tau:
        PASS threshold of Eq. 5, per domain; ``None`` for no threshold.
    scales:
        Scales applied to every method without an explicit scale suffix;
        ``(1.0, 1.05, 1.10)`` gives adversarials and two hard positives.
    settings:
        Line-search parameters.
    chunk_size:
        Originals processed together (each yields up to len(methods) jobs).
    keep_rejected:
        Also yield images that fail ``tau`` (with ``accepted=False``).
    pass_workers:
        Threads for PASS (default: all cores).
    progress:
        Show a progress bar over the originals.
    """
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1] or None, got {tau}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    parsed = _resolve_methods(methods, scales, classifier.num_classes)
    directions = tuple(sorted({Method(m.family, m.k) for m in parsed}))
    images = classifier.check_images(images)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    bar = _progress(len(images), progress)
    try:
        for start in range(0, len(images), chunk_size):
            stop = min(start + chunk_size, len(images))
            yield from _generate_chunk(classifier, images[start:stop], labels[start:stop], start,
                                       parsed, directions, tau, settings, keep_rejected, pass_workers)
            bar.update(stop - start)
    finally:
        bar.close()


def _resolve_methods(methods, scales, num_classes: int) -> tuple[Method, ...]:
    if isinstance(methods, (str, Method)):
        methods = [methods]
    parsed: list[Method] = []
    for m in methods:
        parsed.extend([m] if isinstance(m, Method) else parse_methods(m, num_classes=num_classes))
    if not parsed:
        raise ValueError("methods is empty; name at least one of FGS, FGV, HC-D-k, HC-S-k")
    return with_scales(parsed, scales)


def _generate_chunk(classifier, images, labels, offset, methods, directions, tau, settings,
                    keep_rejected, pass_workers) -> Iterator[GeneratedImage]:
    found_dirs = compute_directions(classifier, images, labels, directions)
    correct = found_dirs.logits.argmax(axis=1) == labels
    # Jobs: every (direction, correctly classified image) pair with a non-zero direction.
    d_idx, i_idx = np.nonzero(found_dirs.valid & correct[None, :])
    if not d_idx.size:
        return
    x = images[i_idx]
    eta = found_dirs.eta_hat[d_idx, i_idx]
    y = labels[i_idx]
    result = line_search(classifier, x, eta, y, settings)

    picks = []
    for method in methods:
        jobs = np.flatnonzero(result.found & (d_idx == directions.index(Method(method.family, method.k))))
        if jobs.size:
            picks.append((method, jobs))
    if not picks:
        return
    # Every hard positive of the chunk in one batched classification.
    scaled = [(m, jobs) for m, jobs in picks if m.scale != 1.0]
    if scaled:
        hp_jobs = np.concatenate([jobs for _, jobs in scaled])
        hp_scale = np.concatenate([np.full(len(jobs), m.scale) for m, jobs in scaled])
        hp_images, hp_pred = hard_positives(classifier, x[hp_jobs], eta[hp_jobs], result.eps[hp_jobs], hp_scale)
    out_images, out_pred, out_job, out_method = [], [], [], []
    offset_hp = 0
    for method, jobs in picks:
        if method.scale == 1.0:
            out_images.append(result.images[jobs])
            out_pred.append(result.predicted[jobs])
        else:
            out_images.append(hp_images[offset_hp:offset_hp + len(jobs)])
            out_pred.append(hp_pred[offset_hp:offset_hp + len(jobs)])
            offset_hp += len(jobs)
        out_job.append(jobs)
        out_method.extend([method] * len(jobs))
    adv = np.concatenate(out_images)
    pred = np.concatenate(out_pred)
    job = np.concatenate(out_job)
    originals = x[job]
    scores = pass_scores(adv, originals, workers=pass_workers)
    metrics = perturbation_metrics(adv, originals, input_scale=classifier.input_scale)
    for r, method in enumerate(out_method):
        j = job[r]
        passes = tau is None or scores.scores[r] >= tau
        accepted = bool(passes and (method.scale != 1.0 or pred[r] != y[j]))
        if not (accepted or keep_rejected):
            continue
        yield GeneratedImage(
            method=method.name,
            source_index=int(offset + i_idx[j]),
            label=int(y[j]),
            predicted=int(pred[r]),
            hot_class=int(found_dirs.hot_class[d_idx[j], i_idx[j]]),
            eps=float(method.scale * result.eps[j]),
            scale=float(method.scale),
            image=adv[r],
            pass_score=float(scores.scores[r]),
            pass_converged=bool(scores.converged[r]),
            l2=float(metrics.l2[r]),
            l2_per_pixel=float(metrics.l2_per_pixel[r]),
            linf=float(metrics.linf[r]),
            l2_input=float(metrics.l2_input[r]),
            forward_passes=int(result.evaluations[j]) + int(method.scale != 1.0),
            accepted=accepted,
        )


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="generate")
