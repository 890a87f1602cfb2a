"""Names of the generation methods, as the paper writes them (Sec. 4, 5.2).

* ``FGS``: fast gradient sign, sign(grad_x J(theta, x, y)) [Goodfellow et al.].
* ``FGV``: fast gradient value, grad_x J(theta, x, y) (Eq. 6).
* ``HC-D-k``: hot/cold direction B_l(omega_hc) (Eq. 7) whose hot class is the
  k-th most similar class, i.e. the k-th highest-scoring class other than y.
* ``HC-S-k``: the sign of the HC-D-k direction.
* A scale suffix ``xS`` makes hard positives: the same direction scaled S >= 1
  times beyond the minimal adversarial (``HC-D-1x1.05``).
* Sets expand to their members: ``HC-D-1..9`` is HC-D-1, ..., HC-D-9, the
  paper's "HC-D-9" training set; ``HC-D-1..9x1.05`` is its "HC-D-9-1.05".
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

FAMILIES = ("FGS", "FGV", "HC-D", "HC-S")
_PATTERN = re.compile(
    r"^(?P<family>FGS|FGV|HC-D|HC-S)"
    r"(?:-(?P<k>\d+)(?:\.\.(?P<k2>\d+))?)?"
    r"(?:x(?P<scale>\d+(?:\.\d+)?))?$"
)


@dataclass(frozen=True, order=True)
class Method:
    """One generation method: a direction family, the hot class rank k, a scale."""

    family: str
    k: int = 0
    scale: float = 1.0

    @property
    def direction(self) -> str:
        """The name without the scale: methods with equal ``direction`` share eta."""
        return self.family if self.family in ("FGS", "FGV") else f"{self.family}-{self.k}"

    @property
    def name(self) -> str:
        """Canonical name, e.g. ``FGS``, ``HC-D-3``, ``HC-D-1x1.05``."""
        return self.direction if self.scale == 1.0 else f"{self.direction}x{self.scale:g}"

    @property
    def is_hot_cold(self) -> bool:
        return self.family.startswith("HC")

    @property
    def uses_sign(self) -> bool:
        return self.family in ("FGS", "HC-S")

    def __str__(self) -> str:
        return self.name


def parse_methods(names: str | Iterable[str], *, num_classes: int | None = None) -> tuple[Method, ...]:
    """Parse method names and sets into a sorted tuple of unique :class:`Method`.

    Parameters
    ----------
    names:
        One name or many, e.g. ``["FGS", "FGV", "HC-D-1..9", "HC-D-1x1.05"]``.
    num_classes:
        When given, hot class ranks must lie in 1..num_classes-1.

    Raises
    ------
    ValueError
        Naming the bad entry and the accepted forms.
    """
    if isinstance(names, str):
        names = [names]
    out: set[Method] = set()
    for name in names:
        m = _PATTERN.match(str(name).strip())
        if m is None:
            raise ValueError(
                f"unknown method {name!r}; use FGS, FGV, HC-D-k, HC-S-k, sets such as HC-D-1..9, "
                "and an optional hard-positive scale suffix such as x1.05"
            )
        family, k, k2, scale = m.group("family"), m.group("k"), m.group("k2"), m.group("scale")
        scale_value = float(scale) if scale else 1.0
        if scale_value < 1.0:
            raise ValueError(f"method {name!r}: hard-positive scale must be >= 1, got {scale_value}")
        if family in ("FGS", "FGV"):
            if k is not None:
                raise ValueError(f"method {name!r}: {family} takes no class rank")
            out.add(Method(family, 0, scale_value))
            continue
        if k is None:
            raise ValueError(f"method {name!r}: {family} needs a class rank, e.g. {family}-1")
        first, last = int(k), int(k2 if k2 is not None else k)
        if first < 1 or last < first:
            raise ValueError(f"method {name!r}: class ranks must satisfy 1 <= first <= last")
        if num_classes is not None and last > num_classes - 1:
            raise ValueError(
                f"method {name!r}: the net has {num_classes} classes, so the hot class rank k "
                f"must be at most {num_classes - 1}"
            )
        out.update(Method(family, rank, scale_value) for rank in range(first, last + 1))
    return tuple(sorted(out))


def with_scales(methods: Iterable[Method], scales: Iterable[float]) -> tuple[Method, ...]:
    """Each unscaled method at each of ``scales``; explicitly scaled methods stay as they are."""
    scales = tuple(float(s) for s in scales)
    bad = [s for s in scales if not (math.isfinite(s) and s >= 1.0)]
    if bad or not scales:
        raise ValueError(f"scales must be a non-empty list of finite values >= 1 (1 = the minimal adversarial, "
                         f"1.05 a hard positive), got {list(scales)}")
    out: set[Method] = set()
    for m in methods:
        if m.scale != 1.0:
            out.add(m)
        else:
            out.update(Method(m.family, m.k, s) for s in scales)
    return tuple(sorted(out))
