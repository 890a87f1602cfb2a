"""Read, check and resolve deploy prototxts and weights before Caffe sees them.

Caffe aborts the whole process (a glog ``CHECK``) on a bad blob name, a
malformed prototxt or a weights file whose shapes do not match. Everything
that can be checked from the protobuf messages alone is checked here and
reported as a ``ValueError`` that names the problem and the fix.

The resolved deploy net always backpropagates to its input
(``force_backward: true``, needed for B_l, Sec. 4.3) and, by default, freezes
every learnable parameter (``lr_mult: 0``) so that Caffe skips the weight
gradients, which adversarial generation never uses.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from hotcold.caffe.runtime import caffe_pb2, import_caffe

# Layer types whose parameter count is known from their own settings.
_PARAMS_FROM_BIAS_TERM = {"Convolution": "convolution_param",
                          "Deconvolution": "convolution_param",
                          "InnerProduct": "inner_product_param"}


@dataclass(frozen=True)
class DeployNet:
    """A checked deploy network description.

    Attributes
    ----------
    path:
        The prototxt as given by the user.
    param:
        The resolved ``NetParameter`` (``force_backward`` set, parameters
        frozen when asked).
    input_blob:
        Name of the image input blob.
    input_shape:
        Its declared shape ``(N, C, H, W)``.
    blob_names:
        Every blob a layer produces, in network order (inputs first).
    """

    path: Path
    param: object
    input_blob: str
    input_shape: tuple[int, ...]
    blob_names: tuple[str, ...]

    def check_blob(self, blob: str, what: str = "blob") -> str:
        """Return ``blob`` when the net has it, else raise ValueError listing valid names."""
        if blob not in self.blob_names:
            raise ValueError(
                f"{what} {blob!r} is not a blob of {self.path}; valid blob names: "
                f"{', '.join(self.blob_names)}"
            )
        return blob

    def write_resolved(self, directory: str | os.PathLike | None = None) -> Path:
        """Write the resolved prototxt to a new temporary file and return its path."""
        fd, name = tempfile.mkstemp(prefix="hotcold_deploy_", suffix=".prototxt", dir=directory)
        with os.fdopen(fd, "w") as fh:
            fh.write(text_format.MessageToString(self.param))
        return Path(name)


def in_phase(layer, phase: int) -> bool:
    """Whether ``layer`` is part of the net in ``phase`` (``caffe_pb2.TRAIN`` or ``TEST``) by its include/exclude rules."""
    if any(rule.HasField("phase") and rule.phase != phase for rule in layer.include):
        return False
    return not any(rule.HasField("phase") and rule.phase == phase for rule in layer.exclude)


def parse_text(path: str | os.PathLike, message):
    """Parse a text protobuf file into ``message``; a missing file or a syntax error becomes a ValueError."""
    path = Path(path)
    kind = type(message).__name__
    if not path.is_file():
        raise ValueError(f"{kind} file {str(path)!r} does not exist; pass the path of a .prototxt")
    raw = path.read_bytes()
    if b"\0" in raw[:4096]:
        raise ValueError(f"{path} is a binary file, not a text {kind} (a .caffemodel or .binaryproto?); pass the "
                         "text .prototxt here and the .caffemodel as the weights")
    try:
        text_format.Merge(raw.decode("utf-8"), message)
    except (UnicodeDecodeError, text_format.ParseError) as exc:
        raise ValueError(f"{path} is not a valid Caffe {kind} (text protobuf): {exc}") from exc
    return message


def parse_prototxt(path: str | os.PathLike):
    """Parse a text ``NetParameter`` (see :func:`parse_text`)."""
    return parse_text(path, caffe_pb2().NetParameter())


def load_deploy(path: str | os.PathLike, *, freeze_params: bool = True) -> DeployNet:
    """Check a deploy prototxt and resolve it for input-gradient computation.

    Parameters
    ----------
    path:
        Deploy prototxt with an ``Input`` layer (or legacy ``input:`` fields).
    freeze_params:
        Set ``lr_mult: 0`` on every learnable parameter so Caffe's backward
        pass computes no weight gradients (same input gradients, less work).
    """
    param = parse_prototxt(path)
    if len(param.layers):
        raise ValueError(
            f"{path} uses the legacy V1 'layers' format; upgrade it with Caffe's "
            "upgrade_net_proto_text tool first"
        )
    param.force_backward = True
    param.ClearField("state")
    kept = [layer for layer in param.layer if in_phase(layer, caffe_pb2().TEST)]
    del param.layer[:]
    param.layer.extend(kept)

    blob_names: list[str] = list(param.input)
    input_blob, input_shape = None, None
    if param.input:
        input_blob = param.input[0]
        if param.input_shape:
            input_shape = tuple(param.input_shape[0].dim)
        elif param.input_dim:
            input_shape = tuple(param.input_dim[:4])
    known_types = set(import_caffe().layer_type_list())
    for layer in param.layer:
        if layer.type not in known_types:
            raise ValueError(
                f"{path}: layer {layer.name!r} has type {layer.type!r}, which this Caffe build does not "
                f"know; known types: {', '.join(sorted(known_types))}"
            )
        for bottom in layer.bottom:
            if bottom not in blob_names:
                raise ValueError(
                    f"{path}: layer {layer.name!r} reads bottom {bottom!r}, which no earlier layer "
                    f"produces; blobs so far: {', '.join(blob_names) or 'none'}"
                )
        if layer.type == "Input" and input_blob is None and layer.top:
            input_blob = layer.top[0]
            shapes = layer.input_param.shape
            input_shape = tuple(shapes[0].dim) if shapes else None
        if layer.type in ("Data", "ImageData", "HDF5Data", "MemoryData", "WindowData"):
            raise ValueError(
                f"{path} reads its input with a {layer.type!r} layer ({layer.name!r}); "
                "hotcold needs a deploy prototxt whose input is an 'Input' layer"
            )
        for top in layer.top:
            if top not in blob_names:
                blob_names.append(top)
        if freeze_params:
            _freeze(layer)
    if input_blob is None:
        raise ValueError(f"{path} has no 'Input' layer and no 'input:' field; pass a deploy prototxt")
    if input_shape is None or len(input_shape) != 4:
        raise ValueError(
            f"{path}: input blob {input_blob!r} needs a 4-D shape (N, C, H, W), got {input_shape}"
        )
    return DeployNet(Path(path), param, input_blob, tuple(int(d) for d in input_shape),
                     tuple(blob_names))


def _freeze(layer) -> None:
    field = _PARAMS_FROM_BIAS_TERM.get(layer.type)
    if field is not None and not len(layer.param):
        n_params = 2 if getattr(layer, field).bias_term else 1
        for _ in range(n_params):
            layer.param.add()
    for spec in layer.param:
        spec.lr_mult = 0.0
        spec.decay_mult = 0.0


def check_weights(path: str | os.PathLike, param_shapes: dict[str, list[tuple[int, ...]]]) -> None:
    """Check that a .caffemodel fits the constructed net before ``copy_from``.

    Parameters
    ----------
    path:
        Binary ``NetParameter`` file.
    param_shapes:
        ``{layer name: [shape of each learnable blob]}`` of the constructed net.

    Raises
    ------
    ValueError
        When the file is missing or not a NetParameter, when it holds no
        weights for a layer of the net, or when a shape differs.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights {str(path)!r} do not exist; pass a .caffemodel file")
    weights = caffe_pb2().NetParameter()
    try:
        weights.ParseFromString(path.read_bytes())
    except Exception as exc:  # protobuf raises DecodeError or RuntimeWarning subclasses
        raise ValueError(f"weights {path} are not a binary Caffe NetParameter (.caffemodel): {exc}") from exc
    stored = {layer.name: list(layer.blobs)
              for layer in list(weights.layer) + list(weights.layers) if len(layer.blobs)}
    for name, shapes in param_shapes.items():
        if name not in stored:
            raise ValueError(
                f"weights {path} hold nothing for layer {name!r}; the net would keep its random "
                f"initialisation. Layers with weights in the file: {', '.join(stored) or 'none'}"
            )
        blobs = stored[name]
        if len(blobs) != len(shapes) or not all(map(_same_shape, blobs, shapes)):
            raise ValueError(
                f"weights {path}: layer {name!r} has parameter shapes "
                f"{[_blob_shape(b) for b in blobs]} in the file but {shapes} in the prototxt; "
                "use the weights trained with this prototxt"
            )


def _blob_shape(blob) -> list[int]:
    if blob.HasField("shape"):
        return list(blob.shape.dim)
    return [blob.num, blob.channels, blob.height, blob.width]


def _same_shape(blob, shape: tuple[int, ...]) -> bool:
    """Caffe's Blob::ShapeEquals: legacy 4-D blobs match shapes left-padded with 1."""
    if blob.HasField("shape"):
        return tuple(blob.shape.dim) == tuple(shape)
    if len(shape) > 4:
        return False
    return tuple(_blob_shape(blob)) == (1,) * (4 - len(shape)) + tuple(shape)


def weights_digest(path: str | os.PathLike) -> str:
    """SHA-256 (16 hex digits) of a .caffemodel's learnable blobs by layer: the weights, not the file.

    A caffemodel also stores its net's layer parameters, among them the data
    layers' LMDB paths, so the same training in another directory gives other
    bytes but the same digest here.
    """
    net = caffe_pb2().NetParameter()
    net.ParseFromString(Path(path).read_bytes())
    h = hashlib.sha256()
    for layer in list(net.layer) + list(net.layers):
        for blob in layer.blobs:
            h.update(layer.name.encode() + b"\0")
            h.update(np.asarray(blob.shape.dim, np.int64).tobytes())
            h.update(np.asarray(blob.data, np.float32).tobytes())
    return h.hexdigest()[:16]
