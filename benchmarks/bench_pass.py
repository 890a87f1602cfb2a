"""PASS throughput in pairs per second at 28 x 28 and 224 x 224 x 3 (figures go to docs/performance.md).

usage: HOTCOLD_MNIST_DIR=/path/to/mnist .venv/bin/python benchmarks/bench_pass.py
           [--workers 1 2] [--repeats 5] [--module PATH]

Workloads, all ``pass_scores`` calls with default settings:

* ``lenet 28x28``: the 400 real LeNet adversarials of the PASS regression set
  (``tests/core/test_pass_regression.py``: 100 each of FGS, FGV, HC-D-1 and
  HC-S-1) repeated 4 times, 1,600 pairs per call.
* ``mnist 28x28``: the 450 synthetic MNIST pairs of the regression set
  (FGS / FGV / hot-cold-like perturbations, shifts, rotations, copies, blank
  images) repeated 4 times, 1,800 pairs per call.
* ``random 224x224x3``: 40 random uint8 images and copies with +-8 noise, the
  224 x 224 x 3 workload of ``benchmarks/bench_generation.py``.
* ``digits 224x224x3``: the 24 colour pairs of the regression set (three
  digits upscaled 8x as channels, with sign, smooth, shift and rotation
  perturbations), repeated twice.

Each figure is the best of ``--repeats`` timed calls after one warm-up call.
``--module`` times another ``pass_measure.py`` instead of hotcold's, e.g. the
previous version for a before / after comparison::

    git show 30efdca:hotcold/core/pass_measure.py > /tmp/pass_old.py
    .venv/bin/python benchmarks/bench_pass.py --module /tmp/pass_old.py
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from hotcold.data.mnist import load_mnist

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
# The workloads are the PASS regression set's pairs (tests/core/test_pass_regression.py).
from tests.core.test_pass_regression import regression_pairs


def load_module(path: str | None) -> ModuleType:
    """hotcold's ``pass_measure``, or the module file at ``path``."""
    if path is None:
        from hotcold.core import pass_measure

        return pass_measure
    spec = importlib.util.spec_from_file_location("pass_measure_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def workloads(mnist_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pairs = regression_pairs(load_mnist(mnist_dir).test_images)
    lenet_advs, lenet_xs, _ = pairs["lenet"]
    advs, xs, _ = pairs["mnist"]
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, size=(40, 224, 224, 3)).astype(np.uint8)
    noise = np.random.default_rng(1).integers(-8, 9, size=big.shape)
    noisy = np.clip(big.astype(int) + noise, 0, 255).astype(np.uint8)
    colour_advs, colour_xs, _ = pairs["color"]
    return {
        "lenet 28x28": (np.concatenate([lenet_advs] * 4), np.concatenate([lenet_xs] * 4)),
        "mnist 28x28": (np.concatenate([advs] * 4), np.concatenate([xs] * 4)),
        "random 224x224x3": (noisy, big),
        "digits 224x224x3": (np.concatenate([colour_advs] * 2), np.concatenate([colour_xs] * 2)),
    }


def pairs_per_second(module: ModuleType, advs: np.ndarray, xs: np.ndarray, workers: int, repeats: int) -> float:
    module.pass_scores(advs, xs, workers=workers)
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        module.pass_scores(advs, xs, workers=workers)
        best = min(best, time.perf_counter() - start)
    return len(advs) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--module", help="a pass_measure.py to time instead of hotcold's")
    parser.add_argument("--mnist", default=os.environ.get("HOTCOLD_MNIST_DIR"))
    args = parser.parse_args()

    module = load_module(args.module)
    print(f"# PASS, {args.module or 'hotcold.core.pass_measure'}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start\n")
    print("| workload | pairs | workers | pairs/s |\n| --- | --- | --- | --- |")
    for name, (advs, xs) in workloads(args.mnist).items():
        for workers in args.workers:
            rate = pairs_per_second(module, advs, xs, workers, args.repeats)
            print(f"| {name} | {len(advs)} | {workers} | {rate:.0f} |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
