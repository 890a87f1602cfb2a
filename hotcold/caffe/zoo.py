"""The model zoo: network descriptions ``models/*.yaml`` (fields: ``models/README.md``).

The repository's ``models/`` and ``prototxt/`` folders are installed as the
package data ``hotcold.caffe.models`` and ``hotcold.caffe.prototxts``
(``setup.py``), so an installed hotcold finds LeNet wherever it runs.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import yaml

from hotcold.caffe.classifier import CaffeClassifier

_PACKAGE_DATA = {"models": "hotcold.caffe.models", "prototxt": "hotcold.caffe.prototxts"}
"""Top-level repository folder -> the package it is installed as."""
_RETIRED_KEYS = ("input_blob", "prob_blob")
"""Keys of hotcold 0.1 model files that nothing reads; accepted with a DeprecationWarning."""


def package_data(folder: str) -> Path:
    """The installed copy of the repository folder ``models`` or ``prototxt``."""
    return Path(str(resources.files(_PACKAGE_DATA[folder])))


def known_models() -> list[str]:
    """Names of the model descriptions shipped with hotcold."""
    return sorted(p.stem for p in package_data("models").glob("*.yaml"))


@dataclass(frozen=True)
class ModelSpec:
    """What hotcold needs to know about a network.

    Relative paths of the YAML file are resolved against its own folder,
    then against hotcold's package data (``prototxt/lenet_deploy.prototxt``).
    """

    name: str
    deploy_prototxt: Path | None
    train_test_prototxt: Path | None
    solver_prototxt: Path | None
    logits_blob: str
    input_shape: tuple[int, ...]
    input_scale: float
    mean: tuple[float, ...] | Path | None
    """Per-channel values, or a ``.binaryproto`` / ``.npy`` mean image (:mod:`hotcold.caffe.mean`)."""
    channel_swap: tuple[int, ...] | None
    num_classes: int
    weights: str

    def classifier(self, weights: str | os.PathLike, *, deploy_prototxt: str | os.PathLike | None = None,
                   **kwargs) -> CaffeClassifier:
        """A :class:`CaffeClassifier` of this network with the given weights."""
        deploy = deploy_prototxt or self.deploy_prototxt
        if deploy is None:
            raise ValueError(
                f"model {self.name!r} ships no deploy prototxt; pass deploy_prototxt= (hotcold --deploy; see its model YAML)"
            )
        return CaffeClassifier(deploy, weights, logits_blob=self.logits_blob, input_scale=self.input_scale,
                               mean=self.mean, channel_swap=self.channel_swap, **kwargs)


def load_model(name_or_path: str | os.PathLike) -> ModelSpec:
    """A shipped model by name (``"lenet"``) or a model YAML file by path, as a :class:`ModelSpec`."""
    path = Path(name_or_path)
    if not path.suffix:
        path = package_data("models") / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ValueError(f"no model description {str(name_or_path)!r}; known models: {', '.join(known_models())}, "
                         "or the path of a model YAML file")
    raw = yaml.safe_load(path.read_text()) or {}
    retired = sorted(set(raw) & set(_RETIRED_KEYS))
    if retired:
        warnings.warn(f"{path}: keys {retired} are no longer read; remove them", DeprecationWarning, stacklevel=2)
        raw = {k: v for k, v in raw.items() if k not in _RETIRED_KEYS}
    names = {f.name for f in fields(ModelSpec)}
    unknown = sorted(set(raw) - names)
    missing = sorted(names - set(raw))
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {unknown}, missing keys {missing}")

    def resolve(p):
        if p is None or Path(p).is_absolute():
            return None if p is None else Path(p)
        local = path.parent / p
        if local.exists():
            return local
        first, _, rest = str(p).partition("/")
        if first in _PACKAGE_DATA and rest:
            return package_data(first) / rest
        raise ValueError(f"{path}: {p!r} is neither beside the YAML file nor in hotcold's package data")

    return ModelSpec(
        name=str(raw["name"]),
        deploy_prototxt=resolve(raw["deploy_prototxt"]),
        train_test_prototxt=resolve(raw["train_test_prototxt"]),
        solver_prototxt=resolve(raw["solver_prototxt"]),
        logits_blob=str(raw["logits_blob"]),
        input_shape=tuple(int(d) for d in raw["input_shape"]),
        input_scale=float(raw["input_scale"]),
        mean=_mean(raw["mean"], resolve, path),
        channel_swap=None if raw["channel_swap"] is None else tuple(int(c) for c in raw["channel_swap"]),
        num_classes=int(raw["num_classes"]),
        weights=str(raw["weights"]),
    )


def _mean(value, resolve, path: Path) -> tuple[float, ...] | Path | None:
    """The YAML's ``mean``: null, a number, a list of per-channel numbers or a mean file's path."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return resolve(value)
        except ValueError:  # a user-supplied mean image: the classifier says where it is missing
            return path.parent / value
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{path}: mean must be null, a number, a list of per-channel numbers or the path of a "
                         f".binaryproto / .npy mean image, got {value!r}")
    return tuple(float(v) for v in values)
