"""The algorithms of the paper, free of Caffe: PASS, directions, line search, generation.

Imports only numpy and OpenCV (tqdm for an optional progress bar) and nothing else of hotcold. A network
enters through the :class:`~hotcold.core.classifier.Classifier` protocol.

* PASS (Sec. 3, Eq. 1-4): :mod:`~hotcold.core.pass_measure`; L2 / L-inf: :mod:`~hotcold.core.metrics`.
* Method names FGS, FGV, HC-D-k, HC-S-k (Sec. 4, 5.2): :mod:`~hotcold.core.methods`.
* Directions through B_l (Sec. 4.1-4.3, Eq. 6-7): :mod:`~hotcold.core.directions`.
* Minimal adversarials and hard positives (Sec. 4.3): :mod:`~hotcold.core.search`.
* Generation with Eq. 5's PASS threshold: :mod:`~hotcold.core.generator`, records: :mod:`~hotcold.core.records`.
"""
from hotcold.core.classifier import Classifier
from hotcold.core.directions import Directions, compute_directions
from hotcold.core.generator import generate, generate_batches
from hotcold.core.methods import Method, parse_methods, with_scales
from hotcold.core.metrics import PerturbationMetrics, perturbation_metrics
from hotcold.core.pass_measure import Alignment, PassBatch, PassResult, align, pass_score, pass_scores, ssim
from hotcold.core.records import FIELDS, GeneratedBatch, GeneratedImage
from hotcold.core.search import SearchResult, SearchSettings, hard_positives, line_search

__all__ = [
    "Classifier", "Directions", "compute_directions", "generate", "generate_batches", "Method", "parse_methods",
    "with_scales", "PerturbationMetrics", "perturbation_metrics", "Alignment", "PassBatch", "PassResult", "align",
    "pass_score", "pass_scores", "ssim", "FIELDS", "GeneratedBatch", "GeneratedImage", "SearchResult",
    "SearchSettings", "hard_positives", "line_search",
]
