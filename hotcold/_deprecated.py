"""Module names of hotcold 0.1 that moved in 0.2: they still import, with a DeprecationWarning.

An old name imports as a small proxy module whose attributes are looked up in
the new modules that now hold its contents (``hotcold.train.shuffled_copy`` is
``hotcold.caffe.lmdb_io.shuffled_copy``). ``hotcold.generate`` is not among
them: it is the function :func:`hotcold.generate`.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

MOVED: dict[str, tuple[str, ...]] = {
    "hotcold.metrics": ("hotcold.core.metrics",),
    "hotcold.pass_measure": ("hotcold.core.pass_measure",),
    "hotcold.methods": ("hotcold.core.methods",),
    "hotcold.directions": ("hotcold.core.directions",),
    "hotcold.search": ("hotcold.core.search",),
    "hotcold._caffe": ("hotcold.caffe.runtime",),
    "hotcold.caffe_net": ("hotcold.caffe.classifier",),
    "hotcold.prototxt": ("hotcold.caffe.prototxt",),
    "hotcold.lmdb_io": ("hotcold.caffe.lmdb_io",),
    "hotcold.train": ("hotcold.caffe.train", "hotcold.caffe.solver", "hotcold.caffe.lmdb_io",
                      "hotcold.pipeline.evaluation"),
    "hotcold.doctor": ("hotcold.caffe.doctor",),
    "hotcold.models": ("hotcold.caffe.zoo",),
    "hotcold.image_sets": ("hotcold.data.image_sets",),
    "hotcold.experiment": ("hotcold.pipeline.runner", "hotcold.pipeline.config", "hotcold.pipeline.stages"),
    "hotcold.generation_run": ("hotcold.pipeline.generation",),
}
"""Old module name -> the new modules that hold its contents, searched in order."""


def _proxy(name: str, homes: tuple[str, ...]) -> types.ModuleType:
    module = types.ModuleType(name, f"Deprecated: moved to {', '.join(homes)}.")

    def __getattr__(attr: str):
        for home in homes:
            target = importlib.import_module(home)
            if hasattr(target, attr):
                return getattr(target, attr)
        raise AttributeError(f"{name}.{attr} does not exist; {name} moved to {', '.join(homes)}")

    module.__getattr__ = __getattr__
    return module


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as a proxy of its new homes, with a DeprecationWarning."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        homes = MOVED[spec.name]
        warnings.warn(f"{spec.name} is now {' / '.join(homes)}; the old name will be removed in hotcold 0.3",
                      DeprecationWarning, stacklevel=2)
        return _proxy(spec.name, homes)

    def exec_module(self, module) -> None:
        """Nothing to run: the proxy looks attributes up when they are asked for."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
