"""The one record schema of generated images (Sec. 3-5), column-wise.

:func:`hotcold.core.generator.generate_batches` yields :class:`GeneratedBatch`,
the generation run stores its columns beside the LMDB (``metadata.csv``, see
:mod:`hotcold.data.records`), and the report reads them back into the same
type. :data:`FIELDS` defines every column once: its name, dtype, text format
and the paper's meaning.
"""
from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Field:
    """One column of the schema."""

    name: str
    dtype: type
    """``str``, ``int`` (int64), ``float`` (float64) or ``bool``."""
    text: str
    """``format`` spec of the column in ``metadata.csv`` (bools are written 0/1)."""
    meaning: str


FIELDS: tuple[Field, ...] = (
    Field("key", str, "", "LMDB key <net>_<source index, 7 digits>_<method>: unique per run"),
    Field("method", str, "", "method name with scale: FGS, FGV, HC-D-k, HC-S-k, HC-D-1x1.05 (Sec. 4, 5.2)"),
    Field("source_index", int, "d", "index of the original x in its data set"),
    Field("net", str, "", "name of the network f the image was generated on"),
    Field("label", int, "d", "y, the original's label; hard positives are trained with it"),
    Field("predicted", int, "d", "f(x~), the net's label for the generated image"),
    Field("hot_class", int, "d", "the hot class t of HC methods (Eq. 7); -1 for FGS / FGV"),
    Field("eps", float, ".6g", "scale * eps*: L-inf size of the perturbation before rounding, pixel levels"),
    Field("scale", float, "g", "1 for a minimal adversarial, > 1 for a hard positive (Sec. 4)"),
    Field("pass_score", float, ".6f", "PASS(x~, x) of Eq. 4"),
    Field("pass_converged", bool, "", "whether ECC alignment converged (else PASS is the unaligned SSIM)"),
    Field("l2", float, ".6g", "||x~ - x||_2 in pixel levels"),
    Field("l2_per_pixel", float, ".6g", "||x~ - x||_2 / (H W) in pixel levels (Fig. 3)"),
    Field("linf", float, ".6g", "||x~ - x||_inf in pixel levels"),
    Field("l2_input", float, ".6g", "||x~ - x||_2 in the network's input scale (Fig. 2)"),
    Field("forward_passes", int, "d", "candidates classified for this image by the line search (+1 for a "
                                       "hard positive's own classification)"),
    Field("accepted", bool, "", "meets Eq. 5 for tau: adversarial (scale 1) and PASS >= tau"),
)
"""Every column of a generated-image record, in ``metadata.csv`` order."""

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
_NUMPY = {str: np.str_, int: np.int64, float: np.float64, bool: np.bool_}

GeneratedImage = namedtuple("GeneratedImage", FIELD_NAMES + ("image",))
GeneratedImage.__doc__ = "One row of a :class:`GeneratedBatch`: the fields of :data:`FIELDS` and its uint8 image."


def record_key(net: str, source_index: int, method: str) -> str:
    """The LMDB key of a generated image: unique per (net, original, method)."""
    return f"{net}_{source_index:07d}_{method}"


@dataclass(frozen=True, eq=False)
class GeneratedBatch:
    """Generated images as columns: one array per field of :data:`FIELDS`, plus the images.

    Reads like a mapping of column name to array (``batch["pass_score"]``,
    ``"linf" in batch``, iteration over the names); :meth:`rows` gives the rows.
    ``images`` is ``N x H x W[ x C]`` uint8, or ``None`` for records read back
    from ``metadata.csv`` (the images live in the LMDB under ``key``).
    """

    key: np.ndarray
    method: np.ndarray
    source_index: np.ndarray
    net: np.ndarray
    label: np.ndarray
    predicted: np.ndarray
    hot_class: np.ndarray
    eps: np.ndarray
    scale: np.ndarray
    pass_score: np.ndarray
    pass_converged: np.ndarray
    l2: np.ndarray
    l2_per_pixel: np.ndarray
    linf: np.ndarray
    l2_input: np.ndarray
    forward_passes: np.ndarray
    accepted: np.ndarray
    images: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = None
        for f in FIELDS:
            column = np.asarray(getattr(self, f.name), dtype=_NUMPY[f.dtype]).reshape(-1)
            object.__setattr__(self, f.name, column)
            if n is None:
                n = len(column)
            elif len(column) != n:
                raise ValueError(f"column {f.name!r} has {len(column)} rows, column 'key' has {n}")
        if self.images is not None and len(self.images) != n:
            raise ValueError(f"images has {len(self.images)} rows, the columns have {n}")

    @classmethod
    def empty(cls, image_shape: tuple[int, ...] | None = None) -> GeneratedBatch:
        """A batch of no rows (with an image array of that shape when given)."""
        images = None if image_shape is None else np.empty((0,) + tuple(image_shape), np.uint8)
        return cls(**{f.name: [] for f in FIELDS}, images=images)

    @classmethod
    def concat(cls, batches: Sequence[GeneratedBatch]) -> GeneratedBatch:
        """Rows of ``batches`` in order; images kept only when every batch has them."""
        if not batches:
            return cls.empty()
        with_images = all(b.images is not None for b in batches)
        return cls(**{f.name: np.concatenate([getattr(b, f.name) for b in batches]) for f in FIELDS},
                   images=np.concatenate([b.images for b in batches]) if with_images else None)

    def select(self, rows: np.ndarray) -> GeneratedBatch:
        """The rows picked by an index array or a boolean mask."""
        return GeneratedBatch(**{f.name: getattr(self, f.name)[rows] for f in FIELDS},
                              images=None if self.images is None else self.images[rows])

    def __len__(self) -> int:
        return len(self.key)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in FIELD_NAMES:
            raise KeyError(f"{name!r} is no column of a generated-image record; columns: {', '.join(FIELD_NAMES)}")
        return getattr(self, name)

    def __contains__(self, name: object) -> bool:
        return name in FIELD_NAMES

    def __iter__(self) -> Iterator[str]:
        return iter(FIELD_NAMES)

    def keys(self) -> tuple[str, ...]:
        """The column names, :data:`FIELD_NAMES`."""
        return FIELD_NAMES

    def values(self) -> list[np.ndarray]:
        """The columns, in :data:`FIELD_NAMES` order."""
        return [getattr(self, name) for name in FIELD_NAMES]

    def items(self) -> list[tuple[str, np.ndarray]]:
        """(name, column) pairs, in :data:`FIELD_NAMES` order."""
        return list(zip(FIELD_NAMES, self.values()))

    def rows(self) -> Iterator[GeneratedImage]:
        """One :data:`GeneratedImage` per row, with Python scalars."""
        columns = [getattr(self, f.name).tolist() for f in FIELDS]
        images = self.images if self.images is not None else [None] * len(self)
        for values in zip(*columns, images):
            yield GeneratedImage(*values)
