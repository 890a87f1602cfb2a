"""Image sets that ``hotcold generate`` reads: IDX files, Datum LMDBs, image folders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff"}


def load_image_set(path: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                   channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 ``N x H x W[ x 3]``) and integer labels from ``path``.

    * an IDX image file (``.idx3-ubyte`` or ``.gz``) with ``labels`` its IDX label file;
    * a Datum LMDB directory (labels from the records);
    * a folder with one sub-folder per integer label (``7/img001.png``); colour
      images are read as RGB when ``channels`` is 3, else as gray.
    """
    p = Path(path)
    if (p / "data.mdb").is_file():
        from hotcold.caffe.lmdb_io import read_datum_lmdb

        arrays = read_datum_lmdb(p)
        return arrays.images, arrays.labels
    if p.is_file():
        from hotcold.data.mnist import read_idx

        if labels is None:
            raise ValueError(f"{p} is an IDX image file; pass its label file with --labels")
        images, label_array = read_idx(p), read_idx(labels)
        if len(images) != len(label_array):
            raise ValueError(f"{p} has {len(images)} images but {labels} has {len(label_array)} labels")
        return images.astype(np.uint8), label_array.astype(np.int64)
    if p.is_dir():
        return _load_folder(p, channels)
    raise ValueError(f"image set {str(p)!r} does not exist; give an IDX file, a Datum LMDB or a folder")


def _load_folder(root: Path, channels: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    files = sorted((f for f in root.glob("*/*") if f.suffix.lower() in _IMAGE_SUFFIXES),
                   key=lambda f: (f.parent.name, f.name))
    if not files:
        raise ValueError(f"{root} holds no images in label sub-folders such as {root}/0/img.png")
    bad = sorted({f.parent.name for f in files if not f.parent.name.isdigit()})
    if bad:
        raise ValueError(f"{root}: sub-folder names must be integer labels, got {bad[:5]}")
    flag = cv2.IMREAD_COLOR if channels == 3 else cv2.IMREAD_GRAYSCALE
    images = []
    for f in files:
        image = cv2.imread(str(f), flag)
        if image is None:
            raise ValueError(f"cannot read image {f}")
        images.append(image[..., ::-1] if channels == 3 else image)
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{root}: images must share one size, found {sorted(shapes)[:4]}")
    return np.stack(images), np.array([int(f.parent.name) for f in files], np.int64)
