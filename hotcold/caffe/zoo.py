"""The model zoo: network descriptions ``models/*.yaml`` (fields: ``models/README.md``).

The repository's ``models/`` and ``prototxt/`` folders are installed as the
package data ``hotcold.caffe.models`` and ``hotcold.caffe.prototxts``
(``setup.py``), so an installed hotcold finds LeNet wherever it runs.

Published weights (the Model Zoo ``.caffemodel`` of GoogLeNet and ResNet-152)
are installed by ``hotcold models fetch NAME`` into
``<models_dir()>/<name>/<weights_file>`` (:mod:`hotcold.caffe.fetch`), where
:meth:`ModelSpec.classifier` finds them when no weights are passed.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

import yaml

from hotcold._guard import check_plain_name
from hotcold.caffe.classifier import CaffeClassifier
from hotcold.caffe.fetch import FetchError, FetchResult, Progress, check_sha1, download, install, models_dir

_PACKAGE_DATA = {"models": "hotcold.caffe.models", "prototxt": "hotcold.caffe.prototxts"}
"""Top-level repository folder -> the package it is installed as."""
_RETIRED_KEYS = ("input_blob", "prob_blob")
"""Keys of hotcold 0.1 model files that nothing reads; accepted with a DeprecationWarning."""
_WEIGHTS_KEYS = ("weights_file", "weights_sha1", "weights_url")
"""Optional keys: the published weights, for ``hotcold models fetch`` (absent: none published)."""


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
    weights_file: str | None = None
    """File name of the published ``.caffemodel``; None when none is published (LeNet: hotcold trains it)."""
    weights_sha1: str | None = None
    """Its published SHA-1; set whenever ``weights_file`` is."""
    weights_url: str | None = None
    """Direct download URL; None when there is none (``weights`` then says where to get the file)."""

    def weights_path(self, directory: str | os.PathLike | None = None) -> Path:
        """Where the published weights go: ``directory/<weights_file>``, by default ``<models_dir()>/<name>/``."""
        if self.weights_file is None:
            raise ValueError(f"model {self.name!r} has no published weights ({self.weights}); pass the path of "
                             "its .caffemodel")
        folder = Path(directory) if directory is not None else models_dir() / self.name
        return folder / self.weights_file

    def installed_weights(self) -> Path:
        """The weights installed by ``hotcold models fetch``, else a ValueError saying how to get them."""
        path = self.weights_path()
        if not path.is_file():
            raise ValueError(f"no weights given and none installed for {self.name!r} at {path}; run "
                             f"`hotcold models fetch {self.name}` (or pass the path of a .caffemodel)")
        return path

    def fetch_weights(self, *, to: str | os.PathLike | None = None, source: str | os.PathLike | None = None,
                      progress: Progress | None = None) -> FetchResult:
        """Download the published weights (or install the file ``source``) after checking their SHA-1.

        They go to :meth:`weights_path` (``to``: that folder instead). See
        :mod:`hotcold.caffe.fetch` for resuming and what happens on errors.
        """
        dest = self.weights_path(to)
        if source is not None:
            return install(source, dest, self.weights_sha1)
        if self.weights_url is None:
            raise FetchError(f"{self.name}'s weights have no direct download URL: {self.weights}. Download "
                             f"{self.weights_file} by hand, then run `hotcold models fetch {self.name} --from FILE`")
        return download(self.weights_url, dest, self.weights_sha1, progress=progress)

    def classifier(self, weights: str | os.PathLike | None = None, *,
                   deploy_prototxt: str | os.PathLike | None = None, **kwargs) -> CaffeClassifier:
        """A :class:`CaffeClassifier` of this network; ``weights=None`` takes the installed published weights."""
        if weights is None:
            weights = self.installed_weights()
        deploy = deploy_prototxt or self.deploy_prototxt
        if deploy is None:
            raise ValueError(
                f"model {self.name!r} ships no deploy prototxt; pass deploy_prototxt= (hotcold --deploy; see its model YAML)"
            )
        if isinstance(self.mean, Path) and not self.mean.is_file():
            raise ValueError(f"model {self.name!r} subtracts the mean image {self.mean.name}, which is not at "
                             f"{self.mean}; put the file from the model's release there (see its model YAML)")
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
    missing = sorted(names - set(raw) - set(_WEIGHTS_KEYS))
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
        mean=_mean(raw["mean"], resolve, path, models_dir() / str(raw["name"])),
        channel_swap=None if raw["channel_swap"] is None else tuple(int(c) for c in raw["channel_swap"]),
        num_classes=int(raw["num_classes"]),
        weights=str(raw["weights"]),
        **_published_weights(path, raw),
    )


def _mean(value, resolve, path: Path, installed: Path) -> tuple[float, ...] | Path | None:
    """The YAML's ``mean``: null, a number, a list of per-channel numbers or a mean file's path.

    A relative mean file is looked for beside the YAML file, in the package data, then beside the
    installed weights (``<models_dir()>/<name>/``, where a release's mean image goes); a missing one is
    named when a classifier is built."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return resolve(value)
        except ValueError:
            return installed / value
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{path}: mean must be null, a number, a list of per-channel numbers or the path of a "
                         f".binaryproto / .npy mean image, got {value!r}")
    return tuple(float(v) for v in values)


def _published_weights(path: Path, raw: dict) -> dict:
    """The optional ``weights_*`` keys, checked: a file name and SHA-1 together, a URL only with them."""
    given = {key: raw[key] for key in _WEIGHTS_KEYS if raw.get(key) is not None}
    if not given:
        return {}
    if "weights_file" not in given or "weights_sha1" not in given:
        raise ValueError(f"{path}: weights_file and weights_sha1 go together (a URL without a checksum is never "
                         f"downloaded); got {sorted(given)}")
    try:
        check_plain_name(given["weights_file"], "weights_file")
        check_sha1(given["weights_sha1"], "weights_sha1")
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    url = given.get("weights_url")
    if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ValueError(f"{path}: weights_url must be an http:// or https:// URL, or null, got {url!r}")
    return given
