"""Generation at dataset scale: adversarials/s and peak memory against the number of source images.

usage: .venv/bin/python benchmarks/bench_generation_scale.py [--weights W] [--sizes 1000 10000]
                                                            [--methods FGS HC-D-1 HC-S-1]

For each size, a fresh process runs ``generate_to_lmdb`` (directions, the line
search, PASS, the LMDB and metadata writes: the generate unit of a run) on the
first N MNIST training images and reports its wall time, adversarials/s and
peak resident memory (``ru_maxrss``). Linear cost means the rate stays flat.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_CHILD = """
import json, resource, sys, time
from hotcold.caffe.zoo import load_model
from hotcold.data.mnist import load_mnist
from hotcold.pipeline.generation import generate_to_lmdb
weights, n, out, methods, source = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(), sys.argv[5]
mnist = load_mnist(source)
clf = load_model("lenet").classifier(weights)
t0 = time.perf_counter()
s = generate_to_lmdb(clf, mnist.train_images[:n], mnist.train_labels[:n], methods, out, chunk_size=500)
seconds = time.perf_counter() - t0
print(json.dumps({"images": s.images, "seconds": seconds,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(REPO / "runs/mnist_quick/train/base0/final.caffemodel"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--methods", nargs="+", default=["FGS", "HC-D-1", "HC-S-1"])
    parser.add_argument("--mnist", default=os.environ.get("HOTCOLD_MNIST_DIR", ""))
    args = parser.parse_args()
    print(f"methods: {' '.join(args.methods)}; chunks of 500 originals; one process per size\n")
    print("| source images | generated | seconds | adversarials/s | peak memory (MiB) |\n|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            done = subprocess.run([sys.executable, "-c", _CHILD, args.weights, str(n), str(Path(tmp) / "gen"),
                                   " ".join(args.methods), args.mnist], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {n} | {r['images']} | {r['seconds']:.0f} | {r['images'] / r['seconds']:.0f} | {r['peak_mib']:.0f} |")


if __name__ == "__main__":
    main()
