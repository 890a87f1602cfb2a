"""Module names of hotcold 0.1 that moved in 0.2: they still import, with a DeprecationWarning.

``hotcold.generate`` is not among them: it is the function :func:`hotcold.generate`.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "hotcold.metrics": "hotcold.core.metrics",
    "hotcold.pass_measure": "hotcold.core.pass_measure",
    "hotcold.methods": "hotcold.core.methods",
    "hotcold.directions": "hotcold.core.directions",
    "hotcold.search": "hotcold.core.search",
    "hotcold._caffe": "hotcold.caffe.runtime",
    "hotcold.caffe_net": "hotcold.caffe.classifier",
    "hotcold.prototxt": "hotcold.caffe.prototxt",
    "hotcold.lmdb_io": "hotcold.caffe.lmdb_io",
    "hotcold.train": "hotcold.caffe.train",
    "hotcold.doctor": "hotcold.caffe.doctor",
    "hotcold.models": "hotcold.caffe.zoo",
    "hotcold.image_sets": "hotcold.data.image_sets",
    "hotcold.experiment": "hotcold.pipeline.runner",
    "hotcold.generation_run": "hotcold.pipeline.generation",
}
"""Old module name -> its new home."""


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module name to the new module object itself (no copy)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        warnings.warn(f"{spec.name} is now {MOVED[spec.name]}; the old name will be removed in hotcold 0.3",
                      DeprecationWarning, stacklevel=2)
        module = importlib.import_module(MOVED[spec.name])
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._real_spec  # the import machinery set the old name's spec on it


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
