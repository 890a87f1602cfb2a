"""Image sets that ``hotcold generate`` reads: IDX files, Datum LMDBs, image folders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff"}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8"


def load_image_set(path: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                   channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 ``N x H x W[ x 3]``) and integer labels from ``path``.

    * an IDX image file (``.idx3-ubyte`` or ``.gz``) with ``labels`` its IDX label file;
    * a Datum LMDB directory (labels from the records); colour records are Caffe's
      BGR (``convert_imageset``, ``hotcold data imagenet``, ``hotcold generate``)
      and come back RGB;
    * a folder with one sub-folder per integer label (``7/img001.png``); colour
      images are read as RGB when ``channels`` is 3, else as gray.
    """
    p = Path(path)
    if (p / "data.mdb").is_file():
        from hotcold.caffe.lmdb_io import read_datum_lmdb

        arrays = read_datum_lmdb(p)
        if arrays.images.ndim == 4 and arrays.images.shape[3] == 3:  # Caffe's BGR records: RGB, as photos
            return np.ascontiguousarray(arrays.images[..., ::-1]), arrays.labels
        return arrays.images, arrays.labels
    if p.is_file():
        from hotcold.data.mnist import read_idx

        if labels is None:
            raise ValueError(f"{p} is an IDX image file; pass its label file with --labels")
        images, label_array = read_idx(p), read_idx(labels)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise ValueError(f"{p} holds {images.dtype} data of shape {images.shape}; an IDX image file for hotcold "
                             "holds unsigned bytes, N x H x W (or N x H x W x 3)")
        if label_array.ndim != 1 or label_array.dtype.kind not in "iu":
            raise ValueError(f"{labels} holds {label_array.dtype} data of shape {label_array.shape}; an IDX label "
                             "file holds one integer per image")
        if len(images) != len(label_array):
            raise ValueError(f"{p} has {len(images)} images but {labels} has {len(label_array)} labels")
        return images, label_array.astype(np.int64)
    if p.is_dir():
        return _load_folder(p, channels)
    raise ValueError(f"image set {str(p)!r} does not exist; give an IDX file, a Datum LMDB or a folder")


def read_image(path: str | os.PathLike, *, channels: int | None = None) -> np.ndarray:
    """One 8-bit image file as uint8 ``H x W`` (gray) or ``H x W x 3`` (RGB).

    ``channels`` 1 or 3 converts to gray or RGB; ``None`` keeps the file's own.
    Every way a file can fail to be an 8-bit image is one ValueError naming it:
    missing or unreadable, not an image, truncated (PNG without IEND, JPEG without EOI),
    16-bit or floating-point pixels.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image {str(path)!r} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"image {path} cannot be read: {exc.strerror or exc}") from None
    truncated = (data.startswith(_PNG_MAGIC) and b"IEND" not in data[-16:]) or \
                (data.startswith(_JPEG_MAGIC) and not data.rstrip(b"\0").endswith(b"\xff\xd9"))
    if truncated:
        raise ValueError(f"image {path} is truncated (the file ends before the image does); copy it again")
    # As Caffe's cv::imread: EXIF orientation applied, alpha dropped (gray + alpha comes as three equal
    # channels); any depth, so that 16-bit files are named below rather than silently scaled.
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH)
    if image is None:
        raise ValueError(f"{path} is not an image file OpenCV can decode (PNG, JPEG, BMP, PGM/PPM, TIFF)")
    if image.dtype != np.uint8:
        depth = "16-bit" if image.dtype == np.uint16 else f"{image.dtype} (floating-point)" \
            if image.dtype.kind == "f" else str(image.dtype)
        raise ValueError(f"image {path} has {depth} pixels; hotcold works on 8-bit images with values 0..255: "
                         "convert it to 8 bits first")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif channels == 3 and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    return image


def _load_folder(root: Path, channels: int) -> tuple[np.ndarray, np.ndarray]:
    files = sorted((f for f in root.glob("*/*") if f.suffix.lower() in _IMAGE_SUFFIXES),
                   key=lambda f: (f.parent.name, f.name))
    if not files:
        raise ValueError(f"{root} holds no images in label sub-folders such as {root}/0/img.png")
    bad = sorted({f.parent.name for f in files if not f.parent.name.isdigit()})
    if bad:
        raise ValueError(f"{root}: sub-folder names must be integer labels, got {bad[:5]}")
    images = [read_image(f, channels=channels) for f in files]
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"{root}: images must share one size, found {sorted(shapes)[:4]}")
    return np.stack(images), np.array([int(f.parent.name) for f in files], np.int64)
