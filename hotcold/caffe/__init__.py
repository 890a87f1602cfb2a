"""Everything that runs Caffe: the only code of hotcold that imports pycaffe.

* :mod:`~hotcold.caffe.runtime`: the pycaffe import, the build's info and CUDA status, the per-thread device.
* :mod:`~hotcold.caffe.classifier`: :class:`CaffeClassifier`, the Classifier protocol on a deploy net, B_l.
* :mod:`~hotcold.caffe.prototxt`: prototxt and weights checks before Caffe sees them.
* :mod:`~hotcold.caffe.lmdb_io`: Datum LMDBs that Caffe's Data layer reads.
* :mod:`~hotcold.caffe.solver`, :mod:`~hotcold.caffe.train`: solver rendering and resumable training.
* :mod:`~hotcold.caffe.adversarial_training`: Goodfellow et al.'s adversarial objective in Caffe's solver step.
* :mod:`~hotcold.caffe.zoo`: the model descriptions (package data ``models/``, ``prototxt/``).
* :mod:`~hotcold.caffe.netgen`: GoogLeNet and ResNet-152 generated with ``caffe.net_spec`` (Sec. 4, 5.3).
* :mod:`~hotcold.caffe.fetch`: resumable, SHA-1-checked downloads of published weights.
* :mod:`~hotcold.caffe.doctor`: ``hotcold doctor``.

pycaffe itself is imported on first use, so this package imports without it.
"""
from hotcold.caffe.adversarial_training import AdversarialObjective
from hotcold.caffe.classifier import CaffeClassifier
from hotcold.caffe.zoo import ModelSpec, load_model

__all__ = ["AdversarialObjective", "CaffeClassifier", "ModelSpec", "load_model"]
