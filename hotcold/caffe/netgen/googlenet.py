"""BVLC GoogLeNet (Szegedy et al. 2015, as replicated in Caffe's Model Zoo) from code, with Caffe's NetSpec.

The paper attacks this net on ImageNet (Sec. 4, Fig. 3) and fine-tunes it on
hard positives (Sec. 5.3). Layer and blob names, fillers, learning-rate and
decay multipliers are those of ``models/bvlc_googlenet`` in the BVLC Caffe
repository, so ``bvlc_googlenet.caffemodel`` loads unchanged into the deploy
net and into the train_val net (whose auxiliary heads ``loss1/*``,
``loss2/*`` it also holds).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from hotcold.caffe.netgen._common import (IMAGENET_MEAN_BGR, check_options, conv_size, finish, learnable,
                                          net_spec, pool_size, scaled, start)
from hotcold.caffe.runtime import caffe_pb2
from hotcold.caffe.solver import NET_PROTOTXT, SNAPSHOT_PREFIX

if TYPE_CHECKING:
    from caffe.proto.caffe_pb2 import NetParameter, SolverParameter

NAME = "GoogleNet"
"""The ``name`` of BVLC's prototxts."""
INCEPTION = (
    # module, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj (Szegedy et al., Table 1)
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)
"""The nine inception modules and their output channels."""
POOL_AFTER = {"3b": "pool3/3x3_s2", "4e": "pool4/3x3_s2"}
"""Max pools (3 x 3, stride 2) between the inception stages."""
AUX_HEAD_AFTER = {"4a": "loss1", "4d": "loss2"}
"""The auxiliary classifiers of the train_val net (loss weight 0.3 each)."""
AUX_LOSS_WEIGHT = 0.3
MIN_IMAGE_SIZE = 47
"""The smallest input whose max-pool windows all fit in their inputs (pool4/3x3_s2 then sees 3 x 3)."""


def googlenet(phase: str = "deploy", *, num_classes: int = 1000, width: float = 1.0, batch: int = 1,
              image_size: int = 224, train_batch: int = 32, test_batch: int = 50) -> NetParameter:
    """BVLC GoogLeNet as a Caffe ``NetParameter``.

    Parameters
    ----------
    phase:
        ``"deploy"``: ``Input`` layer ``data`` (``batch x 3 x image_size x
        image_size``, BGR, mean subtracted by the caller), ``force_backward:
        true``, the logits ``loss3/classifier`` and Softmax ``prob``; no
        auxiliary heads, as BVLC's deploy.prototxt. ``"train_val"``: the
        ``Data`` layers (placeholders ``TRAIN_LMDB`` / ``TEST_LMDB``, crop to
        ``image_size``, mirror in TRAIN, mean 104 / 117 / 123 BGR), the three
        losses (``loss1/loss``, ``loss2/loss`` weight 0.3, ``loss3/loss3``
        weight 1) and top-1 / top-5 ``Accuracy`` layers in TEST.
    num_classes:
        Outputs of the three classifiers; 1000 for ImageNet.
    width:
        Factor on every channel count but the classifiers' (rounded, at least
        1). 1.0 is the published net; smaller values give stand-ins of the
        same architecture and names for tests.
    batch:
        Batch of the deploy ``Input`` layer. hotcold reshapes the input to
        each batch, so this only sizes the first allocation; 1 (BVLC's file
        says 10, for its 10-crop example).
    image_size:
        Input height and width (224 published). The final average pool
        ``pool5/7x7_s1`` covers the whole last feature map (7 x 7 at 224) and
        the auxiliary ones take 5 x 5 windows, or the whole map if smaller.
    train_batch, test_batch:
        Batch sizes of the TRAIN and TEST ``Data`` layers (published: 32, 50).
    """
    check_options(phase, num_classes=num_classes, width=width, batch=batch, image_size=image_size,
                  min_image_size=MIN_IMAGE_SIZE)
    spec = net_spec()
    L, P = spec.layers, spec.params
    n = spec.NetSpec()
    label = start(n, phase, batch=batch, image_size=image_size, train_batch=train_batch, mean=IMAGENET_MEAN_BGR)

    def conv(name: str, bottom, channels: int, kernel: int, relu: str, *, stride: int = 1, pad: int = 0):
        options = {"num_output": scaled(channels, width), "kernel_size": kernel,
                   "weight_filler": {"type": "xavier"}, "bias_filler": {"type": "constant", "value": 0.2}}
        if pad:
            options["pad"] = pad
        if stride != 1:
            options["stride"] = stride
        n[name] = L.Convolution(bottom, param=[learnable(1, 1), learnable(2, 0)], convolution_param=options)
        n[relu] = L.ReLU(n[name], in_place=True)
        return n[relu]

    def classifier(name: str, bottom):
        n[name] = L.InnerProduct(bottom, param=[learnable(1, 1), learnable(2, 0)], inner_product_param={
            "num_output": num_classes, "weight_filler": {"type": "xavier"},
            "bias_filler": {"type": "constant", "value": 0}})
        return n[name]

    def max_pool(name: str, bottom, size: int, *, kernel: int = 3, stride: int = 2, pad: int = 0):
        options = {"pool": P.Pooling.MAX, "kernel_size": kernel, "stride": stride}
        if pad:
            options["pad"] = pad
        n[name] = L.Pooling(bottom, pooling_param=options)
        return n[name], pool_size(size, kernel, stride, pad)

    def lrn(name: str, bottom):
        n[name] = L.LRN(bottom, lrn_param={"local_size": 5, "alpha": 0.0001, "beta": 0.75})
        return n[name]

    def accuracies(prefix: str, logits) -> None:
        n[f"{prefix}/top-1"] = L.Accuracy(logits, label, include={"phase": caffe_pb2().TEST})
        n[f"{prefix}/top-5"] = L.Accuracy(logits, label, include={"phase": caffe_pb2().TEST},
                                          accuracy_param={"top_k": 5})

    def aux_head(prefix: str, bottom, size: int) -> None:
        kernel = min(5, size)
        n[f"{prefix}/ave_pool"] = L.Pooling(bottom, pooling_param={"pool": P.Pooling.AVE, "kernel_size": kernel,
                                                                   "stride": 3})
        x = conv(f"{prefix}/conv", n[f"{prefix}/ave_pool"], 128, 1, f"{prefix}/relu_conv")
        n[f"{prefix}/fc"] = L.InnerProduct(x, param=[learnable(1, 1), learnable(2, 0)], inner_product_param={
            "num_output": scaled(1024, width), "weight_filler": {"type": "xavier"},
            "bias_filler": {"type": "constant", "value": 0.2}})
        n[f"{prefix}/relu_fc"] = L.ReLU(n[f"{prefix}/fc"], in_place=True)
        n[f"{prefix}/drop_fc"] = L.Dropout(n[f"{prefix}/relu_fc"], in_place=True, dropout_ratio=0.7)
        logits = classifier(f"{prefix}/classifier", n[f"{prefix}/drop_fc"])
        # Published layer name "loss1/loss", top "loss1/loss1": NetSpec names a layer after its top unless told.
        n[f"{prefix}/{prefix}"] = L.SoftmaxWithLoss(logits, label, name=f"{prefix}/loss", loss_weight=AUX_LOSS_WEIGHT)
        accuracies(prefix, logits)

    size = image_size
    x = conv("conv1/7x7_s2", n.data, 64, 7, "conv1/relu_7x7", stride=2, pad=3)
    size = conv_size(size, 7, 2, 3)
    x, size = max_pool("pool1/3x3_s2", x, size)
    x = lrn("pool1/norm1", x)
    x = conv("conv2/3x3_reduce", x, 64, 1, "conv2/relu_3x3_reduce")
    x = conv("conv2/3x3", x, 192, 3, "conv2/relu_3x3", pad=1)
    x = lrn("conv2/norm2", x)
    x, size = max_pool("pool2/3x3_s2", x, size)
    for module, c1, c3r, c3, c5r, c5, cp in INCEPTION:
        p = f"inception_{module}"
        b1 = conv(f"{p}/1x1", x, c1, 1, f"{p}/relu_1x1")
        b3 = conv(f"{p}/3x3_reduce", x, c3r, 1, f"{p}/relu_3x3_reduce")
        b3 = conv(f"{p}/3x3", b3, c3, 3, f"{p}/relu_3x3", pad=1)
        b5 = conv(f"{p}/5x5_reduce", x, c5r, 1, f"{p}/relu_5x5_reduce")
        b5 = conv(f"{p}/5x5", b5, c5, 5, f"{p}/relu_5x5", pad=2)
        bp, _ = max_pool(f"{p}/pool", x, size, stride=1, pad=1)
        bp = conv(f"{p}/pool_proj", bp, cp, 1, f"{p}/relu_pool_proj")
        n[f"{p}/output"] = L.Concat(b1, b3, b5, bp)
        x = n[f"{p}/output"]
        if phase == "train_val" and module in AUX_HEAD_AFTER:
            aux_head(AUX_HEAD_AFTER[module], x, size)
        if module in POOL_AFTER:
            x, size = max_pool(POOL_AFTER[module], x, size)
    n["pool5/7x7_s1"] = L.Pooling(x, pooling_param={"pool": P.Pooling.AVE, "kernel_size": size, "stride": 1})
    n["pool5/drop_7x7_s1"] = L.Dropout(n["pool5/7x7_s1"], in_place=True, dropout_ratio=0.4)
    logits = classifier("loss3/classifier", n["pool5/drop_7x7_s1"])
    if phase == "deploy":
        n.prob = L.Softmax(logits)
    else:
        n["loss3/loss3"] = L.SoftmaxWithLoss(logits, label, loss_weight=1)
        accuracies("loss3", logits)
    return finish(n, NAME, phase, image_size=image_size, test_batch=test_batch, mean=IMAGENET_MEAN_BGR)


def quick_solver() -> SolverParameter:
    """BVLC GoogLeNet's ``quick_solver.prototxt`` as a ``SolverParameter``, with hotcold's placeholders.

    The Model Zoo weights are its iteration-2,400,000 snapshot (60 epochs of
    batch 32): base_lr 0.01 with the ``poly`` policy (power 0.5), momentum
    0.9, weight decay 2e-4. ``net`` and ``snapshot_prefix`` are the
    ``NET_PROTOTXT`` / ``SNAPSHOT_PREFIX`` placeholders of
    :func:`hotcold.caffe.solver.render_solver`, which also sets the seed,
    ``max_iter``, the snapshot interval and the solver mode of a run (a
    Sec. 5.3 fine-tune runs far fewer iterations than this schedule).
    """
    pb2 = caffe_pb2()
    solver = pb2.SolverParameter()
    solver.net = NET_PROTOTXT
    solver.test_iter.append(1000)
    solver.test_interval = 4000
    solver.test_initialization = False
    solver.display = 40
    solver.average_loss = 40
    solver.base_lr = 0.01
    solver.lr_policy = "poly"
    solver.power = 0.5
    solver.max_iter = 2400000
    solver.momentum = 0.9
    solver.weight_decay = 0.0002
    solver.snapshot = 40000
    solver.snapshot_prefix = SNAPSHOT_PREFIX
    solver.solver_mode = pb2.SolverParameter.GPU
    return solver
