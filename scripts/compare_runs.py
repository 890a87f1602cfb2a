"""Compare two run directories of the same experiment: records, LMDB contents, weights, the report's tables.

usage: .venv/bin/python scripts/compare_runs.py RUN_A RUN_B

Metadata CSVs, Table 1 and the report's other CSVs (Fig. 6, the InfiMNIST share) are compared byte for byte; LMDBs record by record
(keys and Datum bytes); trained weights blob by blob (a .caffemodel also
embeds its net's data-layer paths, which differ between run directories).
Files only in RUN_A are listed (an imported run lacks the LMDBs nobody needed
again). Exit status 0 when everything both hold is identical, 1 otherwise.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import lmdb
import numpy as np

from hotcold.caffe.runtime import caffe_pb2


def lmdb_digest(path: Path) -> tuple[int, str]:
    """(records, SHA-256 of every key and value in key order)."""
    digest, n = hashlib.sha256(), 0
    with lmdb.open(str(path), readonly=True, lock=False) as env, env.begin() as txn:
        for key, value in txn.cursor():
            digest.update(key)
            digest.update(value)
            n += 1
    return n, digest.hexdigest()[:16]


def weight_blobs(path: Path) -> dict[str, list[bytes]]:
    """The learnable blobs of a .caffemodel, by layer."""
    net = caffe_pb2().NetParameter()
    net.ParseFromString(path.read_bytes())
    return {layer.name: [np.array(b.data, np.float32).tobytes() for b in layer.blobs]
            for layer in net.layer if layer.blobs}


def main(a: Path, b: Path) -> int:
    same = True

    def report(what: str, equal: bool, detail: str = "") -> None:
        nonlocal same
        same &= equal
        print(f"{what}: {'identical' if equal else 'DIFFERENT'}{detail}")

    def both(rel: Path) -> bool:
        if not (b / rel).exists():
            print(f"{rel}: only in {a}")
            return False
        return True

    tables = {p.relative_to(a) for p in (a / "report").glob("*.csv")} | {Path("report/table1.md")}
    for rel in sorted({p.relative_to(a) for p in a.rglob("metadata.csv")} | tables):
        if both(rel):
            report(str(rel), (a / rel).read_bytes() == (b / rel).read_bytes())
    for rel in sorted(p.parent.relative_to(a) for p in a.rglob("data.mdb")):
        if both(rel):
            da, db = lmdb_digest(a / rel), lmdb_digest(b / rel)
            report(str(rel), da == db, f" ({da[0]} records)")
    for rel in sorted(p.relative_to(a) for p in a.rglob("final.caffemodel")):
        if both(rel):
            report(f"{rel} (weights)", weight_blobs(a / rel) == weight_blobs(b / rel))
    print("ALL IDENTICAL" if same else "DIFFERENCES FOUND")
    return 0 if same else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
