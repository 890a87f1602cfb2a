"""The CUDA build on a GPU against the CPU: B_l agreement, LeNet training it/s, generation adversarials/s.

usage: .venv/bin/python benchmarks/bench_gpu.py [--gpu 0] [--iterations 2000] [--images 1000]
                                               [--methods FGS HC-D-1 HC-S-1]

Needs pycaffe built with ``scripts/setup.sh --cuda`` and a GPU (it says so and exits with status 2
otherwise), and MNIST from ``$HOTCOLD_MNIST_DIR`` or the cache. The same library runs both sides, so the CPU
numbers are those of the CUDA build in CPU mode (OpenBLAS, one thread):

1. trains LeNet for N iterations from the same seed on the CPU and on the GPU (10K MNIST training images,
   Caffe's LeNet solver) and reports iterations/s;
2. B_l (Sec. 4.3) from the logits ``ip2`` and from ``ip1`` on 500 test images with one random seed diff, GPU
   against CPU with the CPU-trained weights: max |GPU - CPU| / max |CPU| must be <= 1e-4;
3. ``generate_to_lmdb`` (directions, line search, PASS, LMDB writes) on the first M training images with
   those weights on each device: adversarials/s.

Prints the device and a Markdown table for docs/performance.md; exit status 1 when B_l disagrees.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from hotcold.caffe.lmdb_io import write_datum_lmdb
from hotcold.caffe.runtime import cuda_status
from hotcold.caffe.solver import SolverSettings
from hotcold.caffe.train import train
from hotcold.caffe.zoo import load_model
from hotcold.data.mnist import find_mnist_source, load_mnist
from hotcold.pipeline.generation import generate_to_lmdb

MAX_RELATIVE_DIFFERENCE = 1e-4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--methods", nargs="+", default=["FGS", "HC-D-1", "HC-S-1"])
    args = parser.parse_args()
    status = cuda_status()
    if args.gpu >= len(status.devices):
        print(f"bench_gpu: no gpu:{args.gpu} here: {status.problem or f'{len(status.devices)} GPU(s)'}",
              file=sys.stderr)
        return 2
    gpu = f"gpu:{args.gpu}"
    device = status.devices[args.gpu]
    mnist = load_mnist(find_mnist_source(None))
    lenet = load_model("lenet")
    rows, weights = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train_lmdb = write_datum_lmdb(root / "train.lmdb", mnist.train_images[:10000], mnist.train_labels[:10000])
        test_lmdb = write_datum_lmdb(root / "test.lmdb", mnist.test_images[:2000], mnist.test_labels[:2000])
        settings = SolverSettings(seed=1, max_iter=args.iterations, snapshot_every=args.iterations)
        for name in ("cpu", gpu):
            result = train(lenet, root / f"train_{name}", settings, train_lmdb=train_lmdb, test_lmdb=test_lmdb,
                           device=name)
            weights[name] = result.weights
            rows.append((f"LeNet training, {args.iterations} iterations", name,
                         f"{args.iterations / result.seconds:.0f} it/s"))

        cpu_clf = lenet.classifier(weights["cpu"])
        gpu_clf = lenet.classifier(weights["cpu"], device=gpu)
        images = mnist.test_images[:500]
        worst = 0.0
        for blob in ("ip2", "ip1"):
            width = cpu_clf.net.blobs[blob].data.shape[1]
            diff = np.random.default_rng(7).normal(size=(len(images), width)).astype(np.float32)
            want, got = cpu_clf.backprop(images, blob, diff), gpu_clf.backprop(images, blob, diff)
            relative = float(np.abs(got - want).max() / np.abs(want).max())
            worst = max(worst, relative)
            rows.append((f"B_l from {blob}, 500 images: max rel. difference GPU vs CPU", gpu, f"{relative:.1e}"))

        for name, clf in (("cpu", cpu_clf), (gpu, gpu_clf)):
            summary = generate_to_lmdb(clf, mnist.train_images[:args.images], mnist.train_labels[:args.images],
                                       args.methods, root / f"gen_{name.replace(':', '')}", chunk_size=500)
            rows.append((f"generation, {args.images} images, {' '.join(args.methods)}", name,
                         f"{summary.images / summary.seconds:.0f} adversarials/s"))

    print(f"\n{gpu}: {device.name} (compute {device.compute_capability}); CUDA runtime {status.runtime_version}, "
          f"driver supports CUDA {status.driver_version}\n")
    print("| measurement | device | result |\n|---|---|---:|")
    for what, name, value in rows:
        print(f"| {what} | {name} | {value} |")
    ok = worst <= MAX_RELATIVE_DIFFERENCE
    print(f"\nB_l agreement: {'ok' if ok else 'FAILED'} (worst {worst:.1e}, limit {MAX_RELATIVE_DIFFERENCE:.0e})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
