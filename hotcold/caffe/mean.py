"""Mean images: what a Caffe net subtracts from its input pixels.

Caffe nets are trained on ``pixels - mean`` where the mean is either one value
per channel (BVLC GoogLeNet: ``mean_value`` 104 / 117 / 123, BGR) or a whole
image (ResNet-152's ``ResNet_mean.binaryproto``, 3 x 224 x 224; the
``ilsvrc_2012_mean.binaryproto`` of CaffeNet, 3 x 256 x 256). Both kinds are
given in 0..255 pixel units and in the *net's* channel order (BGR for the
ImageNet models).

A mean image larger than the network input is center-cropped, as Caffe's
``DataTransformer`` does for a center crop at test time (offset
``(H - h) // 2``, ``(W - w) // 2``). The result always broadcasts against an
``N x C x H x W`` input: ``C x 1 x 1`` for per-channel means, ``C x H x W`` for
mean images.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hotcold.caffe.runtime import import_caffe

MeanSource = float | Sequence[float] | np.ndarray | str | os.PathLike | None
"""A scalar, per-channel values, a ``C x H x W`` array, or a ``.binaryproto`` / ``.npy`` file."""


def read_mean_file(path: str | os.PathLike) -> np.ndarray:
    """A mean image from a Caffe ``.binaryproto`` (BlobProto) or a NumPy ``.npy`` file, as float32 ``C x H x W``.

    Raises
    ------
    ValueError
        When the file is missing, is neither format, or does not hold one
        ``C x H x W`` (or ``1 x C x H x W``) image.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mean file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"mean file {path} is not a plain NumPy array file: {exc}") from None
    elif path.suffix == ".binaryproto":
        array = _read_binaryproto(path)
    else:
        raise ValueError(f"mean file {path}: expected a Caffe .binaryproto or a NumPy .npy file, "
                         f"got suffix {path.suffix!r}")
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.dtype.kind not in "fiu" or 0 in array.shape:
        raise ValueError(f"mean file {path} holds an array of shape {array.shape} and dtype {array.dtype}; "
                         "expected one C x H x W mean image in pixel units")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        raise ValueError(f"mean file {path} contains NaN or infinite values")
    return array


def _read_binaryproto(path: Path) -> np.ndarray:
    import_caffe()
    from caffe.proto import caffe_pb2
    from google.protobuf.message import DecodeError

    blob = caffe_pb2.BlobProto()
    try:
        blob.ParseFromString(path.read_bytes())
    except DecodeError:
        raise ValueError(f"mean file {path} is not a Caffe BlobProto (.binaryproto)") from None
    dims = list(blob.shape.dim) if blob.HasField("shape") else [blob.num, blob.channels, blob.height, blob.width]
    values = blob.data if len(blob.data) else blob.double_data
    if not dims or int(np.prod(dims)) != len(values) or len(values) == 0:
        raise ValueError(f"mean file {path} holds {len(values)} values for the shape {dims}; "
                         "it is empty or not a mean image")
    return np.asarray(values, np.float32).reshape(dims)


def resolve_mean(mean: MeanSource, channels: int, height: int, width: int) -> np.ndarray:
    """The mean to subtract from an ``N x C x H x W`` net input: float32 ``C x 1 x 1`` or ``C x H x W``.

    Parameters
    ----------
    mean:
        ``None`` (no mean), a scalar, ``channels`` per-channel values, a
        ``C x H' x W'`` array, or the path of a ``.binaryproto`` / ``.npy``
        mean image; all in pixel units and the net's channel order. A mean
        image with ``H' >= H`` and ``W' >= W`` is center-cropped to ``H x W``.
    channels, height, width:
        The network's input shape.
    """
    if mean is None:
        return np.zeros((channels, 1, 1), np.float32)
    if isinstance(mean, (str, os.PathLike)):
        where = f"mean file {mean}"
        array = read_mean_file(mean)
    else:
        where = "mean"
        array = np.asarray(mean, np.float32)
        if array.ndim <= 1:
            flat = array.reshape(-1)
            if flat.size not in (1, channels) or not np.isfinite(flat).all():
                raise ValueError(f"mean must be a scalar or {channels} finite per-channel values, got {mean!r}")
            return np.broadcast_to(flat, (channels,)).reshape(channels, 1, 1).copy()
        if array.ndim != 3 or not np.isfinite(array).all():
            raise ValueError(f"mean must be a scalar, {channels} per-channel values or a finite C x H x W image, "
                             f"got an array of shape {array.shape}")
    c, h, w = array.shape
    if c != channels:
        raise ValueError(f"{where} has {c} channels, the net's input has {channels}")
    if h < height or w < width:
        raise ValueError(f"{where} is {h} x {w}, smaller than the net's {height} x {width} input; "
                         "a mean image must cover the input (it is center-cropped when larger)")
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(array[:, top:top + height, left:left + width])
