"""Experiments as resumable stages (``hotcold run``).

* :mod:`~hotcold.pipeline.config`: the experiment YAML schema, checked up front.
* :mod:`~hotcold.pipeline.stages`: stage directories, manifests, the code version.
* :mod:`~hotcold.pipeline.generation`: generation at dataset scale into an LMDB, resumable.
* :mod:`~hotcold.pipeline.evaluation`: error rates and the held-out adversarial test set.
* :mod:`~hotcold.pipeline.table1`: the MNIST experiment of Sec. 5.2 (Table 1).
* :mod:`~hotcold.pipeline.fig6`, :mod:`~hotcold.pipeline.infimnist`, :mod:`~hotcold.pipeline.goodfellow`:
  Fig. 6, Table 1's InfiMNIST row and share (Sec. 2), its Goodfellow row; :mod:`~hotcold.pipeline.graph`
  joins them to Table 1's units.
* :mod:`~hotcold.pipeline.runner`: :func:`run_experiment`.
"""
from hotcold.pipeline.config import Experiment, load_experiment
from hotcold.pipeline.runner import run_experiment

__all__ = ["Experiment", "load_experiment", "run_experiment"]
