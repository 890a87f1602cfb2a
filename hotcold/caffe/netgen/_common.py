"""What the ImageNet net generators share: validation, channel scaling, sizes, data layers, text output."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from google.protobuf import text_format

from hotcold.caffe.runtime import caffe_pb2, import_caffe
from hotcold.caffe.solver import TEST_LMDB, TRAIN_LMDB

if TYPE_CHECKING:
    from caffe.net_spec import NetSpec
    from caffe.proto.caffe_pb2 import NetParameter

PHASES = ("deploy", "train_val")
"""``deploy``: an ``Input`` layer and a Softmax ``prob``; ``train_val``: ``Data`` layers and the losses."""
IMAGENET_MEAN_BGR = (104.0, 117.0, 123.0)
"""Per-channel ImageNet mean on the 0..255 scale, BGR: BVLC GoogLeNet's ``mean_value``."""


def net_spec() -> Any:
    """Caffe's own ``caffe.net_spec`` module (``NetSpec``, ``layers``, ``params``)."""
    import_caffe()
    from caffe import net_spec as spec

    return spec


def check_options(phase: str, *, num_classes: int, width: float, batch: int, image_size: int,
                  min_image_size: int) -> None:
    """ValueError / TypeError naming the parameter, for options a generator cannot build."""
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    for name, value, least in (("num_classes", num_classes, 2), ("batch", batch, 1),
                               ("image_size", image_size, min_image_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {value!r}")
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0:
        raise ValueError(f"width must be a positive number (1.0 = the published net), got {width!r}")


def scaled(channels: int, width: float) -> int:
    """``channels * width`` rounded to the nearest int, at least 1 (``width=1`` gives ``channels``)."""
    return max(1, int(round(channels * width)))


def conv_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Output height (or width) of a Caffe Convolution: ``floor((size + 2 pad - kernel) / stride) + 1``."""
    return (size + 2 * pad - kernel) // stride + 1


def pool_size(size: int, kernel: int, stride: int = 1, pad: int = 0) -> int:
    """Output height (or width) of a Caffe Pooling layer, which rounds up and clips the last window."""
    out = -(-(size + 2 * pad - kernel) // stride) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def learnable(lr_mult: float, decay_mult: float) -> dict:
    """One ``param { lr_mult decay_mult }`` of a layer."""
    return {"lr_mult": lr_mult, "decay_mult": decay_mult}


def start(n: NetSpec, phase: str, *, batch: int, image_size: int, train_batch: int,
          mean: tuple[float, ...]) -> Any:
    """Put the input of ``phase`` into the ``NetSpec`` ``n`` as ``n.data``; return ``n.label`` (None in deploy).

    deploy: an ``Input`` layer ``batch x 3 x image_size x image_size``.
    train_val: the TRAIN ``Data`` layer reading ``TRAIN_LMDB``; :func:`finish`
    adds its TEST twin. As in BVLC's ImageNet nets, the stored (256 x 256)
    images are cropped to ``image_size`` (random and mirrored in TRAIN,
    centred in TEST) and the per-channel ``mean`` (BGR, 0..255) is subtracted.
    """
    layers = net_spec().layers
    if phase == "deploy":
        n.data = layers.Input(shape={"dim": [batch, 3, image_size, image_size]})
        return None
    n.data, n.label = _data_layer("TRAIN", train_batch, image_size, mean)
    return n.label


def _data_layer(phase: str, batch: int, crop_size: int, mean: tuple[float, ...]):
    spec = net_spec()
    source, mirror = (TRAIN_LMDB, True) if phase == "TRAIN" else (TEST_LMDB, False)
    return spec.layers.Data(
        ntop=2, include={"phase": getattr(caffe_pb2(), phase)},
        transform_param={"mirror": mirror, "crop_size": crop_size, "mean_value": list(mean)},
        data_param={"source": source, "batch_size": batch, "backend": spec.params.Data.LMDB})


def finish(n: NetSpec, name: str, phase: str, *, image_size: int, test_batch: int,
           mean: tuple[float, ...]) -> NetParameter:
    """The ``NetParameter`` of ``n`` named ``name``.

    deploy: ``force_backward: true``, since B_l (Sec. 4.3) needs gradients
    down to the image. train_val: the TEST ``Data`` layer right after the
    TRAIN one, as in BVLC's train_val files.
    """
    body = n.to_proto()
    net = caffe_pb2().NetParameter()
    net.name = name
    if phase == "deploy":
        net.force_backward = True
        net.layer.extend(body.layer)
        return net
    test = net_spec().NetSpec()
    test.data, test.label = _data_layer("TEST", test_batch, image_size, mean)
    net.layer.extend([body.layer[0], *test.to_proto().layer, *body.layer[1:]])
    return net


def to_text(message, header: str) -> str:
    """The prototxt text of ``message`` after ``header`` (each line becomes a ``#`` comment)."""
    comment = "".join(f"# {line}".rstrip() + "\n" for line in header.strip().splitlines())
    return comment + text_format.MessageToString(message)
