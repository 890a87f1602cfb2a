"""Generated-image records that look like a run's, for tests of the readers, summaries and figures."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from hotcold.core.records import FIELD_NAMES


def write_metadata(path: Path, rows_per_method: dict[str, int], seed: int = 0,
                   drop: str | None = None) -> Path:
    """A runner-like metadata CSV: PASS in (0.4, 1], FGS lower than the rest as in Fig. 4."""
    rng = np.random.default_rng(seed)
    columns = [c for c in FIELD_NAMES if c != drop]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for method, n in rows_per_method.items():
            center = 0.72 if method == "FGS" else 0.93
            scale = 1.1 if "x1.1" in method else 1.05 if "x1.05" in method else 1.0
            for i in range(n):
                l2 = float(rng.uniform(200, 900))
                writer.writerow({
                    "key": f"{method}-{i:05d}", "method": method, "source_index": i, "net": "base0",
                    "label": int(rng.integers(10)), "predicted": int(rng.integers(10)),
                    "hot_class": -1 if method in ("FGS", "FGV") else int(rng.integers(10)),
                    "eps": float(rng.uniform(5, 40)), "scale": scale,
                    "pass_score": float(np.clip(rng.normal(center, 0.06), 0.4, 1.0)),
                    "pass_converged": bool(rng.random() > 0.05), "l2": l2, "l2_per_pixel": l2 / 784,
                    "linf": float(rng.integers(10, 120)), "l2_input": l2 / 256,
                    "forward_passes": int(rng.integers(5, 30)), "accepted": bool(rng.random() > 0.2),
                })
    return path
