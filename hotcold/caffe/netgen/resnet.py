"""ResNet-152 (He et al. 2016, Kaiming He's released Caffe model) from code, with Caffe's NetSpec.

The paper attacks this net on ImageNet beside GoogLeNet (Sec. 4, Fig. 3).
Layer and blob names follow ``ResNet-152-deploy.prototxt`` of
KaimingHe/deep-residual-networks, so ``ResNet-152-model.caffemodel`` loads
unchanged: ``conv1``, ``bn_conv1``, ``scale_conv1``, ``conv1_relu``,
``pool1``, then bottleneck blocks ``res2a`` .. ``res2c``, ``res3a``,
``res3b1`` .. ``res3b7``, ``res4a``, ``res4b1`` .. ``res4b35``, ``res5a`` ..
``res5c`` (branches ``res4b7_branch2a`` with ``bn4b7_branch2a`` and
``scale4b7_branch2a``, projections ``res3a_branch1``), ``pool5``, ``fc1000``,
``prob``. Every convolution has no bias and is followed in place by
``BatchNorm`` and a ``Scale`` with bias; the downsampling stride sits in the
first 1 x 1 convolution of a stage, as in the release.

The release has no training net. The train_val written here adds what
fine-tuning needs and the release leaves open (each choice documented in
``docs/imagenet_nets.md``): He initialisation (``msra``) for convolutions,
``lr_mult`` 1 and weight decay on convolution weights, no weight decay on the
``Scale`` parameters, BVLC's multipliers on ``fc1000``, and BatchNorm
statistics computed over each batch in TRAIN (moving averages used in TEST)
unless ``freeze_batch_norm`` is set.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hotcold.caffe.netgen._common import (IMAGENET_MEAN_BGR, check_options, conv_size, finish, learnable,
                                          net_spec, pool_size, scaled, start)
from hotcold.caffe.runtime import caffe_pb2

if TYPE_CHECKING:
    from caffe.proto.caffe_pb2 import NetParameter

NAME = "ResNet-152"
STAGES = (
    # stage, bottleneck channels, blocks (He et al., Table 1, 152 layers)
    (2, 64, 3),
    (3, 128, 8),
    (4, 256, 36),
    (5, 512, 3),
)
EXPANSION = 4
"""A bottleneck block's output has 4x its bottleneck channels."""
MIN_IMAGE_SIZE = 32
"""The net downsamples by 32: at this size stage 5 works on 1 x 1 maps."""


def block_names(blocks: int) -> list[str]:
    """The release's block suffixes: ``a b c`` for a 3-block stage, else ``a b1 b2 ...``."""
    if blocks <= 3:
        return ["a", "b", "c"][:blocks]
    return ["a", *(f"b{i}" for i in range(1, blocks))]


def resnet152(phase: str = "deploy", *, num_classes: int = 1000, width: float = 1.0, batch: int = 1,
              image_size: int = 224, train_batch: int = 32, test_batch: int = 50,
              freeze_batch_norm: bool = False) -> NetParameter:
    """ResNet-152 as a Caffe ``NetParameter``.

    Parameters
    ----------
    phase:
        ``"deploy"``: ``Input`` layer ``data`` (``batch x 3 x image_size x
        image_size``, BGR, mean subtracted by the caller), ``force_backward:
        true``, BatchNorm with ``use_global_stats: true``, the logits
        ``fc1000`` and Softmax ``prob``. ``"train_val"``: ``Data`` layers
        (``TRAIN_LMDB`` / ``TEST_LMDB``, crop to ``image_size``, mirror in
        TRAIN, per-channel mean 104 / 117 / 123 BGR: Caffe's Data layer takes
        a mean file only of the stored images' size, and the release's mean
        is 224 x 224), ``SoftmaxWithLoss`` ``loss`` and top-1 / top-5
        ``Accuracy`` in TEST.
    num_classes:
        Outputs of ``fc1000`` (the name stays, as in fine-tuned copies of the release).
    width:
        Factor on every channel count but ``fc1000``'s (rounded, at least 1);
        1.0 is the published net.
    batch:
        Batch of the deploy ``Input`` layer (1, as the release).
    image_size:
        Input height and width (224 published); ``pool5`` averages the whole
        last feature map (7 x 7 at 224).
    train_batch, test_batch:
        Batch sizes of the TRAIN and TEST ``Data`` layers.
    freeze_batch_norm:
        train_val only: ``use_global_stats: true`` in TRAIN as well, i.e. keep
        the released mean and variance; the convolutions, ``Scale`` layers
        and ``fc1000`` still learn. Use it to fine-tune with batches much smaller than the 32
        per GPU the model was trained with, where batch statistics are noisy.
    """
    check_options(phase, num_classes=num_classes, width=width, batch=batch, image_size=image_size,
                  min_image_size=MIN_IMAGE_SIZE)
    if freeze_batch_norm and phase == "deploy":
        raise ValueError("freeze_batch_norm applies to phase='train_val'; the deploy net always uses the "
                         "stored statistics")
    spec = net_spec()
    L, P = spec.layers, spec.params
    n = spec.NetSpec()
    label = start(n, phase, batch=batch, image_size=image_size, train_batch=train_batch, mean=IMAGENET_MEAN_BGR)
    global_stats = phase == "deploy" or freeze_batch_norm

    def conv_bn(name: str, bn: str, scale: str, bottom, channels: int, kernel: int, *, stride: int = 1,
                pad: int = 0, relu: str | None = None):
        n[name] = L.Convolution(bottom, param=[learnable(1, 1)], convolution_param={
            "num_output": scaled(channels, width), "kernel_size": kernel, "pad": pad, "stride": stride,
            "bias_term": False, "weight_filler": {"type": "msra"}})
        # Mean, variance and their scale factor are statistics, never solver updates.
        n[bn] = L.BatchNorm(n[name], in_place=True, param=[learnable(0, 0)] * 3,
                            batch_norm_param={"use_global_stats": True} if global_stats else {})
        n[scale] = L.Scale(n[bn], in_place=True, param=[learnable(1, 0)] * 2, scale_param={"bias_term": True})
        if relu is None:
            return n[scale]
        n[relu] = L.ReLU(n[scale], in_place=True)
        return n[relu]

    x = conv_bn("conv1", "bn_conv1", "scale_conv1", n.data, 64, 7, stride=2, pad=3, relu="conv1_relu")
    size = conv_size(image_size, 7, 2, 3)
    n.pool1 = L.Pooling(x, pooling_param={"pool": P.Pooling.MAX, "kernel_size": 3, "stride": 2})
    x, size = n.pool1, pool_size(size, 3, 2)
    for stage, channels, blocks in STAGES:
        for index, suffix in enumerate(block_names(blocks)):
            block = f"{stage}{suffix}"
            stride = 2 if index == 0 and stage > 2 else 1
            if index == 0:
                shortcut = conv_bn(f"res{block}_branch1", f"bn{block}_branch1", f"scale{block}_branch1", x,
                                   EXPANSION * channels, 1, stride=stride)
            else:
                shortcut = x
            y = x
            for branch, out, kernel, branch_stride, pad in (("2a", channels, 1, stride, 0),
                                                            ("2b", channels, 3, 1, 1),
                                                            ("2c", EXPANSION * channels, 1, 1, 0)):
                y = conv_bn(f"res{block}_branch{branch}", f"bn{block}_branch{branch}",
                            f"scale{block}_branch{branch}", y, out, kernel, stride=branch_stride, pad=pad,
                            relu=None if branch == "2c" else f"res{block}_branch{branch}_relu")
            n[f"res{block}"] = L.Eltwise(shortcut, y)
            n[f"res{block}_relu"] = L.ReLU(n[f"res{block}"], in_place=True)
            x = n[f"res{block}_relu"]
            size = conv_size(size, 1, stride)
    n.pool5 = L.Pooling(x, pooling_param={"pool": P.Pooling.AVE, "kernel_size": size, "stride": 1})
    n.fc1000 = L.InnerProduct(n.pool5, param=[learnable(1, 1), learnable(2, 0)], inner_product_param={
        "num_output": num_classes, "weight_filler": {"type": "xavier"},
        "bias_filler": {"type": "constant", "value": 0}})
    if phase == "deploy":
        n.prob = L.Softmax(n.fc1000)
    else:
        in_test = {"phase": caffe_pb2().TEST}
        n.loss = L.SoftmaxWithLoss(n.fc1000, label)
        n["top-1"] = L.Accuracy(n.fc1000, label, include=in_test)
        n["top-5"] = L.Accuracy(n.fc1000, label, include=in_test, accuracy_param={"top_k": 5})
    return finish(n, NAME, phase, image_size=image_size, test_batch=test_batch, mean=IMAGENET_MEAN_BGR)
