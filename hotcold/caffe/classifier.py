"""The Caffe classifier adapter: images in pixel units in, logits and B_l out.

This is the only module that runs Caffe networks. Images are uint8 arrays in
0..255, ``N x H x W`` (gray) or ``N x H x W x C``; the network input is

    net_input = (image[..., channel_swap] - mean) * input_scale     (C x H x W)

and every gradient is returned in pixel units, i.e. multiplied back by
``input_scale`` and put into the caller's channel order and layout.

The backpropagation operator B_l of Sec. 4.3 is :meth:`CaffeClassifier.backprop`:
it seeds the diff of any blob and runs the patched ``Net::BackwardFromBlob``,
so layers above that blob never run.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hotcold._guard import array_digest, file_digest
from hotcold.caffe.mean import MeanSource, resolve_mean
from hotcold.caffe.prototxt import DeployNet, check_weights, load_deploy
from hotcold.caffe.runtime import check_device, import_caffe, set_device
from hotcold.core.classifier import Diff


class CaffeClassifier:
    """A Caffe deploy network seen as a classifier of uint8 images.

    Implements :class:`hotcold.core.classifier.Classifier`. Caffe's mode and
    device are per thread: the net is built on ``device`` in the constructing
    thread and may only be used from that thread (another thread gets a
    ``RuntimeError`` rather than a silent run on the CPU). Executors build one
    classifier per worker thread.

    Parameters
    ----------
    deploy_prototxt:
        Deploy prototxt with an ``Input`` layer. ``force_backward`` is added
        when missing, so the input gradient is always computed.
    weights:
        Trained ``.caffemodel``; checked against the prototxt before loading.
    logits_blob:
        The penultimate-layer blob of Sec. 4.2, the one feeding the final
        Softmax (``ip2`` in LeNet, ``loss3/classifier`` in BVLC GoogLeNet,
        ``fc1000`` in ResNet-152).
    input_scale:
        Factor applied after mean subtraction (LeNet: 1/256 = 0.00390625).
    mean:
        Subtracted before scaling, in pixel units and the *network's* channel
        order: a scalar, per-channel values, a ``C x H x W`` mean image, or the
        path of a ``.binaryproto`` / ``.npy`` mean image (center-cropped when
        larger than the input; :mod:`hotcold.caffe.mean`). ``None`` for no mean.
    channel_swap:
        Permutation from the caller's channel order to the network's
        (``(2, 1, 0)`` for RGB images into a BGR-trained net).
    batch_size:
        Most images per Caffe call; larger inputs are split.
    device:
        ``"cpu"`` or ``"gpu"`` / ``"gpu:N"``.
    freeze_params:
        Skip weight gradients in backward passes (see :mod:`hotcold.caffe.prototxt`).
    """

    def __init__(
        self,
        deploy_prototxt: str | os.PathLike,
        weights: str | os.PathLike,
        *,
        logits_blob: str,
        input_scale: float = 1.0,
        mean: MeanSource = None,
        channel_swap: Sequence[int] | None = None,
        batch_size: int = 256,
        device: str = "cpu",
        freeze_params: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not input_scale > 0:
            raise ValueError(f"input_scale must be > 0, got {input_scale}")
        caffe = import_caffe()
        self.deploy: DeployNet = load_deploy(deploy_prototxt, freeze_params=freeze_params)
        self.logits_blob = self.deploy.check_blob(logits_blob, "logits_blob")
        _, channels, height, width = self.deploy.input_shape
        self.image_shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, channels)
        self.channels = channels
        self.input_scale = float(input_scale)
        self.mean = resolve_mean(mean, channels, height, width)
        self.channel_swap = self._check_swap(channel_swap, channels)
        self.batch_size = int(batch_size)
        self.weights = Path(weights)
        self.device = check_device(device)
        self._thread = threading.get_ident()
        set_device(self.device)

        resolved = self.deploy.write_resolved()
        try:
            self.net = caffe.Net(str(resolved), caffe.TEST)
        finally:
            resolved.unlink()
        param_shapes = {name: [tuple(b.data.shape) for b in blobs]
                        for name, blobs in self.net.params.items()}
        check_weights(self.weights, param_shapes)
        self.net.copy_from(str(self.weights))
        self.input_blob = self.deploy.input_blob
        self._layer_producing(self.logits_blob)
        self.num_classes = int(np.prod(self.net.blobs[self.logits_blob].data.shape[1:]))
        self.forward_passes = 0

    def fingerprint(self) -> dict:
        """What identifies this network's function: hashes of its files and the input mapping."""
        return {"deploy": file_digest(self.deploy.path), "weights": file_digest(self.weights),
                "logits_blob": self.logits_blob, "input_scale": self.input_scale,
                "mean": self.mean.ravel().tolist() if self.mean.size == self.channels else array_digest(self.mean),
                "channel_swap": None if self.channel_swap is None else self.channel_swap.tolist()}

    # -- validation -----------------------------------------------------------------
    @staticmethod
    def _check_swap(channel_swap, channels: int) -> np.ndarray | None:
        if channel_swap is None:
            return None
        swap = np.asarray(channel_swap, int)
        if sorted(swap.tolist()) != list(range(channels)):
            raise ValueError(
                f"channel_swap must be a permutation of 0..{channels - 1}, got {channel_swap!r}"
            )
        return swap

    def check_images(self, images: np.ndarray) -> np.ndarray:
        """Validate a uint8 batch ``N x H x W[ x C]`` matching the net's input."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(
                f"images must be uint8 in 0..255, got dtype {images.dtype}; convert with "
                "np.clip(np.rint(x), 0, 255).astype(np.uint8)"
            )
        if images.shape[1:] != self.image_shape:
            raise ValueError(
                f"images must have shape N x {' x '.join(map(str, self.image_shape))} for "
                f"{self.deploy.path}, got {images.shape}"
            )
        return images

    # -- layout conversion ----------------------------------------------------------
    def to_net_input(self, images: np.ndarray) -> np.ndarray:
        """Pixels (caller layout and channel order) to the network's input array."""
        x = images.astype(np.float32)
        if self.channels == 1:
            x = x[:, None, :, :]
        else:
            if self.channel_swap is not None:
                x = x[..., self.channel_swap]
            x = x.transpose(0, 3, 1, 2)
        return (x - self.mean) * self.input_scale

    def input_gradient_to_pixels(self, grad: np.ndarray) -> np.ndarray:
        """d/d(net input) to d/d(pixel) in the caller's layout (chain rule of the scaling)."""
        g = grad.astype(np.float64) * self.input_scale
        if self.channels == 1:
            return g[:, 0]
        g = g.transpose(0, 2, 3, 1)
        if self.channel_swap is not None:
            g = g[..., np.argsort(self.channel_swap)]
        return g

    # -- Caffe calls ----------------------------------------------------------------
    def _use(self) -> None:
        """Check the calling thread and put Caffe on this net's device in it."""
        if threading.get_ident() != self._thread:
            raise RuntimeError(
                f"this CaffeClassifier ({self.deploy.path}) was built in another thread; Caffe's mode and "
                f"device ({self.device}) are per thread, so build the classifier in the thread that uses it"
            )
        set_device(self.device)

    def _forward(self, chunk: np.ndarray, end: str) -> None:
        data = self.to_net_input(chunk)
        blob = self.net.blobs[self.input_blob]
        if blob.data.shape != data.shape:
            blob.reshape(*data.shape)
            self.net.reshape()
        blob.data[...] = data
        self.net.forward(end=self._layer_producing(end))
        self.forward_passes += 1

    def _layer_producing(self, blob: str) -> str:
        producer = self.net._top_producer_of_blob(blob)
        if producer < 0 or blob == self.input_blob:
            raise ValueError(f"blob {blob!r} is the net's input; pick a blob a layer computes")
        return self.net._layer_names[producer]

    def predict(self, images: np.ndarray) -> np.ndarray:
        """Logits ``N x K`` (the penultimate-layer output h(x) of Sec. 4.2), float32."""
        images = self.check_images(images)
        self._use()
        out = np.empty((len(images), self.num_classes), np.float32)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            self._forward(chunk, self.logits_blob)
            out[start:start + len(chunk)] = self.net.blobs[self.logits_blob].data.reshape(len(chunk), -1)
        return out

    def classify(self, images: np.ndarray) -> np.ndarray:
        """Predicted labels f(x) (argmax of the logits), int64."""
        return self.predict(images).argmax(axis=1)

    def backprop(self, images: np.ndarray, blob: str, diff: Diff) -> np.ndarray:
        """B_l (Sec. 4.3): the input gradient in pixel units for one diff seeded at ``blob``.

        Parameters
        ----------
        images:
            uint8 ``N x H x W[ x C]``.
        blob:
            Any blob a layer produces, e.g. the logits blob.
        diff:
            An array ``N x <blob shape>`` (or broadcastable to it), or a
            callable mapping the blob's forward values of a batch (``n x ...``)
            and the batch's ``slice`` of the images to that batch's diff.

        Returns
        -------
        ``N x H x W[ x C]`` float64.
        """
        return self.backprop_many(images, blob, [diff])[0]

    def backprop_many(self, images: np.ndarray, blob: str, diffs: Sequence[Diff]) -> np.ndarray:
        """B_l for several diffs: ``S x N x H x W[ x C]`` float64, one slab per diff.

        One forward pass per batch, then one backward pass per diff from the
        layer producing ``blob``: B_l is linear in the seed for a fixed forward
        state, so all seeds share the forward pass.
        """
        images = self.check_images(images)
        self.deploy.check_blob(blob)
        self._layer_producing(blob)
        self._use()
        seeds = list(diffs)
        out = np.empty((len(seeds), len(images)) + self.image_shape, np.float64)
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            rows = slice(start, start + len(chunk))
            self._forward(chunk, blob)
            values = self.net.blobs[blob].data.copy()
            for s, seed in enumerate(seeds):
                diff = seed(values, rows) if callable(seed) else np.broadcast_to(
                    np.asarray(seed, np.float32), (len(images),) + values.shape[1:])[rows]
                self.net.blobs[blob].diff[...] = diff
                self.net._backward_from_blob(blob)
                out[s, rows] = self.input_gradient_to_pixels(self.net.blobs[self.input_blob].diff)
        return out
