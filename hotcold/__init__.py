"""hotcold: PASS, hot/cold adversarial directions and hard positives on Caffe.

A toolkit for Rozsa, Rudd, Boult, "Adversarial Diversity and Hard Positive
Generation", CVPR Workshops 2016:

* PASS (Sec. 3, Eq. 1-4): :func:`pass_score`, :func:`ssim`, :func:`align`.
* Directions (Sec. 4.1-4.2): FGS, FGV, HC-D-k, HC-S-k through B_l, the
  backward pass from any blob of the patched Caffe (Sec. 4.3).
* Minimal adversarials and hard positives (Sec. 4.3, 5.2): :func:`generate`.

Modules that run Caffe import pycaffe lazily, so PASS and the metrics work
without a Caffe build.
"""
from hotcold.metrics import PerturbationMetrics, perturbation_metrics
from hotcold.methods import Method, parse_methods
from hotcold.pass_measure import Alignment, PassBatch, PassResult, align, pass_score, pass_scores, ssim

__version__ = "0.1.0"

_LAZY = {
    "CaffeClassifier": "hotcold.caffe_net",
    "compute_directions": "hotcold.directions",
    "Directions": "hotcold.directions",
    "generate": "hotcold.generate",
    "GeneratedImage": "hotcold.generate",
    "line_search": "hotcold.search",
    "hard_positives": "hotcold.search",
    "SearchSettings": "hotcold.search",
    "SearchResult": "hotcold.search",
    "load_model": "hotcold.models",
    "ModelSpec": "hotcold.models",
}

__all__ = [
    "Alignment", "PassBatch", "PassResult", "align", "pass_score", "pass_scores", "ssim",
    "PerturbationMetrics", "perturbation_metrics", "Method", "parse_methods", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hotcold' has no attribute {name!r}")
