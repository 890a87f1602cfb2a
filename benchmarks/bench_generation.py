"""Speed of generation and PASS on LeNet / MNIST (figures go to docs/performance.md).

usage: .venv/bin/python benchmarks/bench_generation.py [--weights W] [--images 1000]

Measures, on the first N MNIST test images the net classifies correctly:
adversarials per second per method, mean candidates classified per
adversarial (the line search's forward passes), Caffe forward calls, and PASS
pairs per second with 1 thread and with all cores. Without --weights it uses
the quick run's base net (runs/mnist_quick/train/base0/final.caffemodel).
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

import hotcold
from hotcold.core.directions import compute_directions
from hotcold.core.methods import parse_methods
from hotcold.core.search import line_search
from hotcold.data.mnist import load_mnist

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(REPO / "runs/mnist_quick/train/base0/final.caffemodel"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--mnist", default=os.environ.get("HOTCOLD_MNIST_DIR"))
    args = parser.parse_args()

    clf = hotcold.load_model("lenet").classifier(args.weights, batch_size=1000)
    mnist = load_mnist(args.mnist)
    x, y = mnist.test_images[:2 * args.images], mnist.test_labels[:2 * args.images].astype(np.int64)
    ok = clf.classify(x) == y
    x, y = x[ok][:args.images], y[ok][:args.images]
    print(f"# LeNet / MNIST, {len(x)} correctly classified test images; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores\n")
    print("| method | adversarials | adv/s | candidates per adversarial | Caffe forward calls | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ["FGS", "FGV", "HC-D-1", "HC-S-1", "HC-D-1..9"]:
        methods = parse_methods(name)
        calls0 = clf.forward_passes
        t0 = time.perf_counter()
        d = compute_directions(clf, x, y, methods)
        jobs_x = np.tile(x, (len(methods), 1, 1))
        result = line_search(clf, jobs_x, d.eta_hat.reshape(jobs_x.shape), np.tile(y, len(methods)))
        seconds = time.perf_counter() - t0
        found = result.found.sum()
        print(f"| {name} | {found} / {len(jobs_x)} | {found / seconds:.0f} | "
              f"{result.evaluations[result.found].mean():.1f} | {clf.forward_passes - calls0} | {seconds:.2f} |")

    print("\n| B_l, 10 seeds per image | seconds | images x seeds / s |\n| --- | --- | --- |")
    seeds = [np.random.default_rng(k).normal(size=(len(x), 10)).astype(np.float32) for k in range(10)]
    for freeze in (True, False):
        net = hotcold.load_model("lenet").classifier(args.weights, batch_size=1000, freeze_params=freeze)
        t0 = time.perf_counter()
        net.backprop_many(x, "ip2", seeds)
        seconds = time.perf_counter() - t0
        label = "weights frozen (lr_mult 0, hotcold's default)" if freeze else "weight gradients computed (stock)"
        print(f"| {label} | {seconds:.2f} | {10 * len(x) / seconds:.0f} |")

    d = compute_directions(clf, x, y, parse_methods("HC-D-1"))
    result = line_search(clf, x, d.eta_hat[0], y)
    adv, orig = result.images[result.found], x[result.found]
    print("\n| PASS | pairs | pairs/s |\n| --- | --- | --- |")
    for workers in (1, os.cpu_count()):
        t0 = time.perf_counter()
        hotcold.pass_scores(adv, orig, workers=workers)
        seconds = time.perf_counter() - t0
        print(f"| {workers} thread(s), 28x28 | {len(adv)} | {len(adv) / seconds:.0f} |")
    big = np.random.default_rng(0).integers(0, 256, size=(40, 224, 224, 3)).astype(np.uint8)
    noisy = np.clip(big.astype(int) + np.random.default_rng(1).integers(-8, 9, size=big.shape), 0, 255).astype(np.uint8)
    t0 = time.perf_counter()
    hotcold.pass_scores(noisy, big, workers=os.cpu_count())
    print(f"| {os.cpu_count()} thread(s), 224x224x3 | 40 | {40 / (time.perf_counter() - t0):.1f} |")


if __name__ == "__main__":
    main()
