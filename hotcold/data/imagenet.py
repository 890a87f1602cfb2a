"""ImageNet (or any folder of labelled photos) as Caffe Datum LMDBs, as ``convert_imageset`` writes them.

Caffe's ImageNet recipe (``examples/imagenet/create_imagenet.sh``) runs
``convert_imageset`` with ``--resize_height=256 --resize_width=256
--shuffle``: every JPEG is decoded by OpenCV (BGR), warped to 256 x 256 and
stored as a raw ``uint8`` Datum under the key ``%08d_<relative path>`` in
shuffled order. :func:`convert_image_folder` does the same, with what a user of
a 1.28M-image conversion needs besides:

- **labels** from the class sub-folders (``n01440764/...``): the sorted folder
  names are the classes, as in Caffe's ``synsets.txt``; a validation folder
  that is flat takes its labels from a ``val.txt``-style file
  (``ILSVRC2012_val_00000001.JPEG 65``);
- **resumable**: chunks of images are single LMDB transactions; the shuffled
  order is fixed by the seed, so a re-run skips the chunks already stored;
- **nothing silently dropped**: a file that is not a readable 8-bit image is
  skipped and listed with its reason in ``<name>_skipped.tsv``;
- ``shorter_side``: instead of warping, resize the shorter side to ``size``
  and center-crop the longer one (no distortion; every record stays
  ``size x size``, which hotcold's readers and Caffe batches need).

Records are stored in Caffe's BGR order, so the LMDBs are interchangeable
with ones made by Caffe's tools; :func:`read_center_crops` gives them back as
RGB ``N x 224 x 224 x 3`` center crops (the crop the BVLC GoogLeNet deploy
net and Sec. 5.3 of the paper use).
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hotcold._guard import DirectoryLock, claim
from hotcold._io import atomic_write
from hotcold.caffe.lmdb_io import DatumLmdbAppender, iter_datum_lmdb
from hotcold.data.image_sets import read_image

CHUNK = 1000
"""Images per LMDB transaction: the grain of resuming."""
_SKIP_SUFFIXES = {".txt", ".tsv", ".csv", ".json", ".md", ".xml"}
"""Files beside the images that are not meant as images (annotations, lists): not listed as skipped."""


@dataclass(frozen=True)
class ConvertedSet:
    """One converted split."""

    lmdb: Path
    images: int
    """Records stored."""
    skipped: list[tuple[str, str]]
    """(relative path, reason) of every file that could not be stored."""


def list_classes(root: str | os.PathLike, synsets: str | os.PathLike | None = None) -> list[str]:
    """Class names in label order: the lines of a ``synsets.txt`` file, else ``root``'s sorted sub-folders.

    Caffe's ``synsets.txt`` for ILSVRC 2012 lists the 1,000 WordNet IDs in sorted
    order, so both give the same labels on ImageNet. A line may carry a
    description after the ID (``n01440764 tench, Tinca tinca``).
    """
    if synsets is not None:
        path = Path(synsets)
        if not path.is_file():
            raise ValueError(f"synsets file {str(path)!r} does not exist")
        names = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
        if len(set(names)) != len(names):
            raise ValueError(f"{path} names a class twice; each line is one class, in label order")
        return names
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist")
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise ValueError(f"{root} has no class sub-folders (such as {root}/n01440764/); give the training "
                         "folder of ImageNet or a folder with one sub-folder per class")
    return names


def list_folder(root: str | os.PathLike, classes: Sequence[str]) -> list[tuple[str, int]]:
    """(relative path, label) of every file in ``root``'s class sub-folders, sorted by path."""
    root = Path(root)
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and p.name not in index)
    if unknown:
        raise ValueError(f"{root}: sub-folders {unknown[:5]} are not among the {len(classes)} classes; "
                         "use the same classes (or --synsets file) for every split")
    return sorted((str(f.relative_to(root)), index[f.parent.name]) for name in classes
                  if (root / name).is_dir() for f in (root / name).rglob("*")
                  if f.is_file() and not f.name.startswith(".") and f.suffix.lower() not in _SKIP_SUFFIXES)


def read_label_file(path: str | os.PathLike, num_classes: int) -> list[tuple[str, int]]:
    """(file name, label) lines of a Caffe list file such as ILSVRC 2012's ``val.txt``, in file order."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"label file {str(path)!r} does not exist")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        name, _, label = line.rpartition(" ")
        if not name or not label.strip().isdigit():
            raise ValueError(f"{path}:{n}: expected '<file name> <integer label>', got {line!r}")
        if int(label) >= num_classes:
            raise ValueError(f"{path}:{n}: label {label} is not one of the {num_classes} classes (0..{num_classes - 1})")
        rows.append((name.strip(), int(label)))
    if not rows:
        raise ValueError(f"label file {path} is empty")
    return rows


def resize_image(image: np.ndarray, size: int, *, shorter_side: bool = False) -> np.ndarray:
    """An ``H x W x 3`` image as ``size x size``: warped (Caffe's recipe) or shorter side + center crop."""
    import cv2

    height, width = image.shape[:2]
    if not shorter_side:
        return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    scale = size / min(height, width)
    new_h, new_w = max(size, round(height * scale)), max(size, round(width * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return resized[top:top + size, left:left + size]


def center_crop(images: np.ndarray, size: int) -> np.ndarray:
    """The central ``size x size`` window of ``N x H x W[ x C]`` images (Caffe's test-time crop offsets)."""
    height, width = images.shape[1:3]
    if height < size or width < size:
        raise ValueError(f"images are {height} x {width}, smaller than the {size} x {size} crop")
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(images[:, top:top + size, left:left + size])


def crop_to_input(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Images larger than a net's ``height x width`` input, center-cropped to it (the crop of Caffe's ImageNet
    deploy nets); images that fit, or that no center crop can fit, as they are (the classifier names those)."""
    h, w = images.shape[1:3]
    if (h, w) == (height, width) or h < height or w < width:
        return images
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(images[:, top:top + height, left:left + width])


def convert_image_folder(root: str | os.PathLike, out_lmdb: str | os.PathLike, *, classes: Sequence[str],
                         labels: Sequence[tuple[str, int]] | None = None, size: int = 256,
                         shorter_side: bool = False, shuffle: bool = True, seed: int = 0, threads: int = 2,
                         progress: bool = True) -> ConvertedSet:
    """One split of photos into a Datum LMDB of BGR ``size x size`` records (resumable; see the module doc).

    Parameters
    ----------
    root:
        The split's folder: class sub-folders, or flat files when ``labels`` is given.
    out_lmdb:
        The LMDB directory; an unfinished one of the same conversion is continued.
    classes:
        Class names in label order (:func:`list_classes`).
    labels:
        (file name relative to ``root``, label) pairs instead of sub-folders (``val.txt``).
    size, shorter_side:
        See :func:`resize_image`.
    shuffle, seed:
        Shuffle the records (Caffe's ``--shuffle``; the training set needs it:
        its SGD reads the LMDB in key order).
    threads:
        Decoding threads (OpenCV releases the GIL).
    """
    from tqdm import tqdm

    root, out_lmdb = Path(root), Path(out_lmdb)
    if not root.is_dir():
        raise ValueError(f"image folder {str(root)!r} does not exist")
    if size < 1 or threads < 1:
        raise ValueError(f"size and threads must be >= 1, got {size} and {threads}")
    entries = list(labels) if labels is not None else list_folder(root, classes)
    if not entries:
        raise ValueError(f"{root} holds no files to convert")
    order = np.random.default_rng(seed).permutation(len(entries)) if shuffle else np.arange(len(entries))
    width = max(8, len(str(len(entries))))
    listing = hashlib.sha256("".join(f"{name}\t{label}\n" for name, label in entries).encode()).hexdigest()[:16]
    record = {"kind": "hotcold imagenet split", "root": str(root.absolute()), "files": len(entries),
              "listing": listing, "chunk": CHUNK, "classes": len(classes), "size": size,
              "shorter_side": shorter_side, "shuffle": shuffle, "seed": seed}
    skipped_path = out_lmdb.with_name(out_lmdb.name + "_skipped.tsv")
    chunks_dir = out_lmdb.with_name(out_lmdb.name + "_chunks")
    with DirectoryLock(chunks_dir, f"convert {root}"):
        claim(chunks_dir, record, fix=f"remove {out_lmdb}, {chunks_dir} and {skipped_path} to convert anew, "
                                      "or choose another --out")
        with DatumLmdbAppender(out_lmdb) as lmdb_out, ThreadPoolExecutor(threads) as pool:
            bar = tqdm(total=len(entries), desc=f"convert {root.name}", unit="img", disable=not progress)
            for start in range(0, len(entries), CHUNK):
                rows = order[start:start + CHUNK]
                done_file = chunks_dir / f"{start // CHUNK:06d}.json"
                if done_file.is_file():
                    bar.update(len(rows))
                    continue
                keys = [f"{start + j:0{width}d}_{_ascii(entries[i][0])}" for j, i in enumerate(rows)]
                images = list(pool.map(lambda i: _load(root / entries[i][0], size, shorter_side), rows))
                ok = [j for j, im in enumerate(images) if not isinstance(im, str)]
                skipped = [(entries[rows[j]][0], images[j]) for j in range(len(rows)) if isinstance(images[j], str)]
                fresh = [j for j in ok if keys[j] not in lmdb_out]
                if fresh:
                    lmdb_out.append(np.stack([images[j] for j in fresh]),
                                    np.array([entries[rows[j]][1] for j in fresh], np.int64),
                                    keys=[keys[j] for j in fresh])
                atomic_write(done_file, json.dumps({"stored": len(ok), "skipped": skipped}))
                bar.update(len(rows))
            bar.close()
            stored = len(lmdb_out)
        skipped_all = [tuple(s) for f in sorted(chunks_dir.glob("[0-9]*.json"))
                       for s in json.loads(f.read_text())["skipped"]]
        atomic_write(skipped_path, "".join(f"{p}\t{why}\n" for p, why in skipped_all))
    if stored == 0:
        raise ValueError(f"no file of {root} is a readable image; see {skipped_path}")
    return ConvertedSet(out_lmdb, stored, skipped_all)


def _ascii(name: str) -> str:
    """A file name as an LMDB key part: ASCII (non-ASCII characters escaped), within LMDB's key size."""
    return name.encode("ascii", "backslashreplace").decode("ascii")[-400:]


def _load(path: Path, size: int, shorter_side: bool) -> np.ndarray | str:
    """The BGR record of one file, or the reason it cannot be one."""
    try:
        rgb = read_image(path, channels=3)
    except ValueError as exc:
        return str(exc).replace("\t", " ").replace("\n", " ")
    return np.ascontiguousarray(resize_image(rgb, size, shorter_side=shorter_side)[..., ::-1])


def convert_imagenet(out: str | os.PathLike, *, train: str | os.PathLike | None = None,
                     val: str | os.PathLike | None = None, val_labels: str | os.PathLike | None = None,
                     synsets: str | os.PathLike | None = None, size: int = 256, shorter_side: bool = False,
                     seed: int = 0, threads: int = 2, progress: bool = True) -> dict[str, ConvertedSet]:
    """``hotcold data imagenet``: ``out/train_lmdb`` (shuffled) and ``out/val_lmdb`` plus ``out/synsets.txt``.

    The classes come from ``synsets`` or the training folder's sub-folders (or
    the validation folder's, without a training folder). The validation set
    takes its labels from its own class sub-folders or, when flat, from
    ``val_labels`` (``val.txt``). Re-running continues an interrupted conversion.
    """
    if train is None and val is None:
        raise ValueError("give --train DIR, --val DIR or both")
    out = Path(out)
    classes = list_classes(train if train is not None else val, synsets)
    out.mkdir(parents=True, exist_ok=True)
    synsets_file = out / "synsets.txt"
    if synsets_file.is_file() and synsets_file.read_text().split() != classes:
        raise ValueError(f"{synsets_file} lists other classes than this conversion; choose another --out")
    atomic_write(synsets_file, "".join(f"{c}\n" for c in classes))
    labels = None
    if val is not None:  # checked before the (long) training conversion
        val = Path(val)
        if not val.is_dir():
            raise ValueError(f"image folder {str(val)!r} does not exist")
        flat = not any(p.is_dir() for p in val.iterdir())
        if flat and val_labels is None:
            raise ValueError(f"{val} has no class sub-folders; give its labels with --val-labels val.txt")
        labels = read_label_file(val_labels, len(classes)) if val_labels is not None else None
    done = {}
    if train is not None:
        done["train"] = convert_image_folder(train, out / "train_lmdb", classes=classes, size=size,
                                             shorter_side=shorter_side, shuffle=True, seed=seed, threads=threads,
                                             progress=progress)
    if val is not None:
        done["val"] = convert_image_folder(val, out / "val_lmdb", classes=classes, labels=labels, size=size,
                                           shorter_side=shorter_side, shuffle=False, seed=seed, threads=threads,
                                           progress=progress)
    return done


def read_center_crops(lmdb_path: str | os.PathLike, crop: int, *, limit: int | None = None,
                      batch_size: int = 1000) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
    """Batches (RGB ``n x crop x crop x 3`` center crops, labels, keys) of a BGR Datum LMDB, in key order."""
    seen = 0
    for batch in iter_datum_lmdb(lmdb_path, batch_size=batch_size):
        images, labels, keys = batch.images, batch.labels, batch.keys
        if limit is not None:
            images, labels, keys = images[:limit - seen], labels[:limit - seen], keys[:limit - seen]
        if images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"{lmdb_path} holds records of shape {images.shape[1:]}; expected colour images")
        yield center_crop(images, crop)[..., ::-1].copy(), labels, keys
        seen += len(keys)
        if limit is not None and seen >= limit:
            return
