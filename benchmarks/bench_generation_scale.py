"""Generation at dataset scale: adversarials/s and peak memory against the number of source images.

usage: .venv/bin/python benchmarks/bench_generation_scale.py [--weights W] [--sizes 1000 10000]
                                                            [--methods FGS HC-D-1 HC-S-1]

For each size, a fresh process runs ``generate_to_lmdb`` (directions, the line
search, PASS, the LMDB and metadata writes: the generate unit of a run) on the
first N MNIST training images and reports its wall time, adversarials/s and
peak resident memory: the process's own (``ru_maxrss``) and, sampled from
``/proc`` every 0.5 s, that of the process and its PASS worker processes
together (Linux). Linear cost means the rate stays flat.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
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
    print("| source images | generated | seconds | adversarials/s | peak memory (MiB) | peak, with PASS workers (MiB) |"
          "\n|---:|---:|---:|---:|---:|---:|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            child = subprocess.Popen([sys.executable, "-c", _CHILD, args.weights, str(n), str(Path(tmp) / "gen"),
                                      " ".join(args.methods), args.mnist], stdout=subprocess.PIPE, text=True)
            tree_peak = 0
            while child.poll() is None:
                tree_peak = max(tree_peak, _tree_rss_kib(child.pid))
                time.sleep(0.5)
            out, _ = child.communicate()
            if child.returncode:
                raise SystemExit(f"the generation of {n} images failed (exit status {child.returncode})")
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {n} | {r['images']} | {r['seconds']:.0f} | {r['images'] / r['seconds']:.0f} | {r['peak_mib']:.0f} | "
              f"{tree_peak / 1024:.0f} |")


def _tree_rss_kib(pid: int) -> int:
    """Resident memory (KiB) of a process and all its descendants (the PASS worker processes), from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        children.setdefault(int(fields["PPid"]), []).append(int(entry.name))
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0])
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        total += rss.get(p, 0)
        stack += children.get(p, [])
    return total


if __name__ == "__main__":
    main()
