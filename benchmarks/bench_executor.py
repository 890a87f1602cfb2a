"""The generate units of an experiment on the local executor against ``processes: N``, same base nets.

usage: .venv/bin/python benchmarks/bench_executor.py [--experiment mnist_3nets] [--workers 2]
                                                     [--root runs/bench_executor]

1. trains the experiment's base nets once (``--units 'train/*'``) and exports them;
2. imports them into two fresh run directories and times ``--units 'generate/*'`` there, once with the
   local executor and once with a LocalCluster of N worker processes;
3. checks that both produced the same LMDB records and metadata.

Prints a Markdown table: wall seconds, generated images, images/s and the speed-up.
"""
from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from hotcold.caffe.lmdb_io import lmdb_digest
from hotcold.pipeline.runner import run_experiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="mnist_3nets")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", default="runs/bench_executor")
    args = parser.parse_args()
    root = Path(args.root)
    base, export = root / "base", root / "export"
    if not (export / "hotcold.json").is_file():
        run_experiment(args.experiment, out=base, progress=False, units="train/*", export=export)
    rows = []
    for executor in ("local", "processes"):
        out = root / executor
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run_experiment(args.experiment, out=out, progress=False, units="generate/*", import_from=export,
                       executor=executor, workers=args.workers if executor == "processes" else None)
        seconds = time.perf_counter() - t0
        nets = sorted(p for p in (out / "generate").iterdir() if (p / "metadata.csv").is_file())
        images = sum(len((p / "metadata.csv").read_text().splitlines()) - 1 for p in nets)
        digests = [(lmdb_digest(p / "images.lmdb"), (p / "metadata.csv").read_bytes()) for p in nets]
        rows.append((executor, seconds, images, digests))
    same = rows[0][3] == rows[1][3]
    print(f"\n{args.experiment}: generate units of {len(rows[0][3])} base nets, {os.cpu_count()} cores; "
          f"identical outputs: {same}\n")
    print("| executor | wall s | images | images/s | speed-up |\n|---|---:|---:|---:|---:|")
    for executor, seconds, images, _ in rows:
        label = executor if executor == "local" else f"processes: {args.workers}"
        print(f"| {label} | {seconds:.0f} | {images} | {images / seconds:.0f} | {rows[0][1] / seconds:.2f} |")


if __name__ == "__main__":
    main()
