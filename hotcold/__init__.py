"""hotcold: PASS, hot/cold adversarial directions and hard positives on Caffe.

A toolkit for Rozsa, Rudd, Boult, "Adversarial Diversity and Hard Positive
Generation", CVPR Workshops 2016. Its layers, each importing only those
before it:

* :mod:`hotcold.core`: the algorithms, free of Caffe. PASS (Sec. 3, Eq. 1-4):
  :func:`pass_score`; FGS, FGV, HC-D-k, HC-S-k directions (Sec. 4.1-4.2);
  minimal adversarials and hard positives (Sec. 4.3): :func:`generate`.
* :mod:`hotcold.caffe`: :class:`CaffeClassifier` with B_l, the backward pass
  from any blob of the patched Caffe (Sec. 4.3); LMDBs, training, the model zoo.
* :mod:`hotcold.data`: MNIST, image sets, generated-image records on disk.
* :mod:`hotcold.report`: Table 1, summaries and figures (Sec. 5).
* :mod:`hotcold.pipeline`: experiments (``hotcold run``) in resumable stages.

pycaffe is imported on first use, so PASS and the metrics work without a
Caffe build.
"""
from hotcold import _deprecated
from hotcold._version import __version__ as __version__
from hotcold.caffe import CaffeClassifier, ModelSpec, load_model
from hotcold.core import (
    Alignment,
    Classifier,
    Directions,
    GeneratedBatch,
    GeneratedImage,
    Method,
    PassBatch,
    PassResult,
    PerturbationMetrics,
    SearchResult,
    SearchSettings,
    align,
    compute_directions,
    generate,
    generate_batches,
    hard_positives,
    line_search,
    parse_methods,
    pass_score,
    pass_scores,
    perturbation_metrics,
    ssim,
)

__all__ = [
    "Alignment", "PassBatch", "PassResult", "align", "pass_score", "pass_scores", "ssim",
    "PerturbationMetrics", "perturbation_metrics", "Method", "parse_methods", "Classifier",
    "CaffeClassifier", "compute_directions", "Directions", "generate", "generate_batches", "GeneratedBatch",
    "GeneratedImage", "line_search", "hard_positives", "SearchSettings", "SearchResult", "load_model", "ModelSpec",
]

_deprecated.install()
