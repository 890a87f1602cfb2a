"""The line search (Sec. 4.3): candidates per minimal adversarial, speed and exactness, both strategies.

usage: .venv/bin/python benchmarks/bench_search.py [--weights W] [--images 1000] [--ray 100]
                                                   [--offset 5000]

On N MNIST test images the net classifies correctly (from --offset on), for
FGS, FGV, HC-D-1 and HC-S-1, with ``strategy="bisect"`` (growing steps plus
binary search) and ``"secant"`` (margin-predicted tries) side by side:

* candidates classified per minimal adversarial (every forward pass of the
  search, the not-found jobs' included, over the adversarials found);
* adversarials/s of directions + search (PASS excluded), and candidates/s
  during the search against Caffe's bare forward rate at the same batch size;
* exactness: every returned image is adversarial; the distinct candidate just
  below it is classified y; and on the first --ray digits the whole ray below
  eps* (every distinct candidate) is classified, counting rays with an
  earlier adversarial.

Without --weights it uses the quick run's base net.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

import hotcold
from hotcold.core.directions import compute_directions
from hotcold.core.methods import parse_methods
from hotcold.core.search import SearchSettings, breakpoints, candidate, line_search
from hotcold.data.mnist import load_mnist

REPO = Path(__file__).resolve().parent.parent
FAMILIES = ("FGS", "FGV", "HC-D-1", "HC-S-1")


def _whole_ray(clf, x, eta, y, eps_star) -> tuple[int, int]:
    """(rays with an adversarial candidate below eps*, candidates classified)."""
    earlier = total = 0
    for j in range(len(x)):
        cuts = breakpoints(x[j], eta[j], 0.0, eps_star[j])
        names = np.concatenate(([0.0], (cuts[:-1] + cuts[1:]) / 2)) if len(cuts) else np.zeros(1)
        labels = clf.classify(candidate(x[j][None].astype(np.float64), eta[j][None], names))
        earlier += int(np.any(labels != y[j]))
        total += len(names)
    return earlier, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(REPO / "runs/mnist_quick/train/base0/final.caffemodel"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--offset", type=int, default=5000)
    parser.add_argument("--ray", type=int, default=100)
    parser.add_argument("--mnist", default=os.environ.get("HOTCOLD_MNIST_DIR"))
    args = parser.parse_args()

    clf = hotcold.load_model("lenet").classifier(args.weights, batch_size=1000)
    mnist = load_mnist(args.mnist)
    end = args.offset + 3 * args.images
    x, y = mnist.test_images[args.offset:end], mnist.test_labels[args.offset:end].astype(np.int64)
    ok = clf.classify(x) == y
    x, y = x[ok][:args.images], y[ok][:args.images]

    clf.predict(x)  # warm up
    t0 = time.perf_counter()
    for _ in range(3):
        clf.predict(x)
    bare = 3 * len(x) / (time.perf_counter() - t0)
    print(f"{len(x)} correctly classified MNIST test images from index {args.offset}; "
          f"Caffe bare forward {bare:.0f} images/s at batch 1000\n")
    print("| strategy | method | found | candidates / adversarial | adversarials/s (directions + search) "
          "| candidates/s (% of bare forward) | not adversarial | below eps* adversarial "
          f"| rays with an earlier adversarial (of {args.ray}) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for strategy in ("bisect", "secant"):
        settings = SearchSettings(strategy=strategy)
        for family in FAMILIES:
            t0 = time.perf_counter()
            d = compute_directions(clf, x, y, parse_methods(family))
            t1 = time.perf_counter()
            r = line_search(clf, x, d.eta_hat[0], y, settings, logits=d.logits)
            t2 = time.perf_counter()
            f = np.flatnonzero(r.found)
            not_adv = int(np.sum(clf.classify(r.images[f]) == y[f]))
            lower = []
            for j in f:
                cuts = breakpoints(x[j], d.eta_hat[0][j], 0.0, r.eps[j])
                lower.append((cuts[-2] + cuts[-1]) / 2 if len(cuts) > 1 else (cuts[-1] / 2 if len(cuts) else 0.0))
            below = candidate(x[f].astype(np.float64), d.eta_hat[0][f], np.array(lower))
            below_adv = int(np.sum(clf.classify(below) != y[f]))
            ray = f[:args.ray]
            earlier, _ = _whole_ray(clf, x[ray], d.eta_hat[0][ray], y[ray], r.eps[ray])
            evals = int(r.evaluations.sum())
            print(f"| {strategy} | {family} | {len(f)}/{len(x)} | {evals / len(f):.2f} | {len(f) / (t2 - t0):.0f} "
                  f"| {evals / (t2 - t1):.0f} ({100 * evals / (t2 - t1) / bare:.0f}%) | {not_adv} | {below_adv} "
                  f"| {earlier} |")


if __name__ == "__main__":
    main()
