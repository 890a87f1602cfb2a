"""Network descriptions in ``models/*.yaml`` (fields: ``models/README.md``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from hotcold.caffe_net import CaffeClassifier

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO / "models"


@dataclass(frozen=True)
class ModelSpec:
    """What hotcold needs to know about a network.

    Paths are resolved against the repository root when relative.
    """

    name: str
    deploy_prototxt: Path | None
    train_test_prototxt: Path | None
    solver_prototxt: Path | None
    input_blob: str
    logits_blob: str
    prob_blob: str
    input_shape: tuple[int, ...]
    input_scale: float
    mean: tuple[float, ...] | None
    channel_swap: tuple[int, ...] | None
    num_classes: int
    weights: str

    def classifier(self, weights: str | os.PathLike, *, deploy_prototxt: str | os.PathLike | None = None,
                   **kwargs) -> CaffeClassifier:
        """A :class:`CaffeClassifier` of this network with the given weights."""
        deploy = deploy_prototxt or self.deploy_prototxt
        if deploy is None:
            raise ValueError(
                f"model {self.name!r} ships no deploy prototxt; pass deploy_prototxt= (see models/{self.name}.yaml)"
            )
        return CaffeClassifier(deploy, weights, logits_blob=self.logits_blob, input_scale=self.input_scale,
                               mean=self.mean, channel_swap=self.channel_swap, **kwargs)


def load_model(name_or_path: str | os.PathLike) -> ModelSpec:
    """Load ``models/<name>.yaml`` or a YAML file path into a :class:`ModelSpec`."""
    path = Path(name_or_path)
    if not path.suffix:
        path = MODELS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))
        raise ValueError(f"no model description {str(name_or_path)!r}; known models: {', '.join(known)}")
    raw = yaml.safe_load(path.read_text()) or {}
    names = {f.name for f in fields(ModelSpec)}
    unknown = sorted(set(raw) - names)
    missing = sorted(names - set(raw))
    if unknown or missing:
        raise ValueError(f"{path}: unknown keys {unknown}, missing keys {missing}")

    def resolve(p):
        return None if p is None else (Path(p) if Path(p).is_absolute() else REPO / p)

    return ModelSpec(
        name=str(raw["name"]),
        deploy_prototxt=resolve(raw["deploy_prototxt"]),
        train_test_prototxt=resolve(raw["train_test_prototxt"]),
        solver_prototxt=resolve(raw["solver_prototxt"]),
        input_blob=str(raw["input_blob"]),
        logits_blob=str(raw["logits_blob"]),
        prob_blob=str(raw["prob_blob"]),
        input_shape=tuple(int(d) for d in raw["input_shape"]),
        input_scale=float(raw["input_scale"]),
        mean=None if raw["mean"] is None else tuple(float(m) for m in raw["mean"]),
        channel_swap=None if raw["channel_swap"] is None else tuple(int(c) for c in raw["channel_swap"]),
        num_classes=int(raw["num_classes"]),
        weights=str(raw["weights"]),
    )
