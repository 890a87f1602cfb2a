"""Generate adversarial images and hard positives with their metrics (Sec. 3-4).

For each chunk of images: keep those the net classifies as their label,
compute every direction once (:mod:`hotcold.core.directions`), run the batched line
search (:mod:`hotcold.core.search`), scale for hard positives, then score every
image with PASS (Eq. 4) and the perturbation metrics (:mod:`hotcold.core.metrics`).

Acceptance (Eq. 5): a minimal adversarial (scale 1) is accepted when
f(x~) != y and PASS(x~, x) >= tau. A hard positive (scale > 1) is accepted when
PASS(x~, x) >= tau ("hard positives are similarly constrained by a PASS
threshold"); it keeps the label y whether or not the net still misclassifies
it. ``tau=None`` accepts every image that the search found.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from hotcold.core.classifier import Classifier
from hotcold.core.directions import compute_directions
from hotcold.core.methods import Method, parse_methods, with_scales
from hotcold.core.metrics import perturbation_metrics
from hotcold.core.pass_measure import pass_scores
from hotcold.core.records import GeneratedBatch, GeneratedImage, record_key
from hotcold.core.search import SearchSettings, hard_positives, line_search


def generate_batches(
    classifier: Classifier,
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
    net_name: str = "net",
    source_indices: Sequence[int] | np.ndarray | None = None,
) -> Iterator[GeneratedBatch]:
    """Yield one :class:`~hotcold.core.records.GeneratedBatch` per chunk of originals.

    Parameters
    ----------
    classifier:
        The network f (any :class:`~hotcold.core.classifier.Classifier`).
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
        Also yield images that fail ``tau`` (with ``accepted`` False).
    pass_workers:
        Workers for PASS (default: all cores; processes for small images, threads for large ones, see
        :func:`~hotcold.core.pass_measure.pass_scores`).
    progress:
        Show a progress bar over the originals.
    net_name:
        The ``net`` column and the first part of each ``key``.
    source_indices:
        The originals' indices in their data set (default ``0..N-1``): the
        ``source_index`` column.
    """
    if tau is not None and not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1] or None, got {tau}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    parsed = resolve_methods(methods, scales, classifier.num_classes)
    images = classifier.check_images(images)
    labels = np.asarray(labels, np.int64)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {labels.shape}")
    indices = np.arange(len(images)) if source_indices is None else np.asarray(source_indices, np.int64)
    if indices.shape != (len(images),):
        raise ValueError(f"source_indices must have shape ({len(images)},), got {indices.shape}")
    # Checked above when called; the chunks are generated as they are asked for.
    return _batches(classifier, images, labels, indices, parsed, tau, settings, chunk_size, keep_rejected,
                    pass_workers, progress, net_name)


def _batches(classifier, images, labels, indices, parsed, tau, settings, chunk_size, keep_rejected, pass_workers,
             progress, net_name) -> Iterator[GeneratedBatch]:
    directions = tuple(sorted({Method(m.family, m.k) for m in parsed}))
    bar = _progress(len(images), progress)
    try:
        for start in range(0, len(images), chunk_size):
            stop = min(start + chunk_size, len(images))
            yield _generate_chunk(classifier, images[start:stop], labels[start:stop], indices[start:stop],
                                  parsed, directions, tau, settings, keep_rejected, pass_workers, net_name)
            bar.update(stop - start)
    finally:
        bar.close()


def generate(
    classifier: Classifier,
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    methods: str | Iterable[str | Method],
    tau: float | None = None,
    scales: Sequence[float] = (1.0,),
    **options,
) -> Iterator[GeneratedImage]:
    """Yield the generated images one by one: the rows of :func:`generate_batches`.

    Takes the same arguments; each row is a
    :data:`~hotcold.core.records.GeneratedImage` (``r.method``, ``r.pass_score``,
    ``r.image``, ...).
    """
    batches = generate_batches(classifier, images, labels, methods, tau, scales, **options)  # checks now
    return (row for batch in batches for row in batch.rows())


def resolve_methods(methods: str | Iterable[str | Method], scales: Sequence[float],
                    num_classes: int) -> tuple[Method, ...]:
    """The methods named (sets expanded), each unscaled one at every scale of ``scales``."""
    if isinstance(methods, (str, Method)):
        methods = [methods]
    parsed: list[Method] = []
    for m in methods:
        parsed.extend([m] if isinstance(m, Method) else parse_methods(m, num_classes=num_classes))
    if not parsed:
        raise ValueError("methods is empty; name at least one of FGS, FGV, HC-D-k, HC-S-k")
    return with_scales(parsed, scales)


def _generate_chunk(classifier, images, labels, sources, methods, directions, tau, settings,
                    keep_rejected, pass_workers, net_name) -> GeneratedBatch:
    empty = GeneratedBatch.empty(images.shape[1:])
    found_dirs = compute_directions(classifier, images, labels, directions)
    correct = found_dirs.logits.argmax(axis=1) == labels
    # Jobs: every (direction, correctly classified image) pair with a non-zero direction.
    d_idx, i_idx = np.nonzero(found_dirs.valid & correct[None, :])
    if not d_idx.size:
        return empty
    x = images[i_idx]
    eta = found_dirs.eta_hat[d_idx, i_idx]
    y = labels[i_idx]
    result = line_search(classifier, x, eta, y, settings, logits=found_dirs.logits[i_idx])

    # Rows: every (method, job) pair whose direction found an adversarial, grouped by method.
    picks = [(m, np.flatnonzero(result.found & (d_idx == directions.index(Method(m.family, m.k)))))
             for m in methods]
    picks = [(m, jobs) for m, jobs in picks if jobs.size]
    if not picks:
        return empty
    job = np.concatenate([jobs for _, jobs in picks])
    scale = np.concatenate([np.full(len(jobs), m.scale) for m, jobs in picks])
    method = np.concatenate([np.full(len(jobs), m.name, dtype=object) for m, jobs in picks]).astype(str)
    adv = result.images[job]
    pred = result.predicted[job]
    # Every hard positive of the chunk in one batched classification.
    hp = scale != 1.0
    if hp.any():
        adv[hp], pred[hp] = hard_positives(classifier, x[job[hp]], eta[job[hp]], result.eps[job[hp]], scale[hp])
    originals = x[job]
    scores = pass_scores(adv, originals, workers=pass_workers)
    metrics = perturbation_metrics(adv, originals, input_scale=classifier.input_scale)
    passes = np.ones(len(job), bool) if tau is None else scores.scores >= tau
    accepted = passes & (hp | (pred != y[job]))
    source = sources[i_idx[job]]
    batch = GeneratedBatch(
        key=[record_key(net_name, s, m) for s, m in zip(source.tolist(), method.tolist())],
        method=method, source_index=source, net=np.full(len(job), net_name), label=y[job], predicted=pred,
        hot_class=found_dirs.hot_class[d_idx[job], i_idx[job]], eps=scale * result.eps[job], scale=scale,
        pass_score=scores.scores, pass_converged=scores.converged, l2=metrics.l2,
        l2_per_pixel=metrics.l2_per_pixel, linf=metrics.linf, l2_input=metrics.l2_input,
        forward_passes=result.evaluations[job] + hp, accepted=accepted, images=adv)
    return batch if keep_rejected else batch.select(accepted)


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
