"""ImageNet nets of the paper from code (Sec. 4, Fig. 3; Sec. 5.3), with Caffe's ``caffe.net_spec``.

* :func:`googlenet`, :func:`quick_solver`: BVLC GoogLeNet and its quick solver.
* :func:`resnet152`: ResNet-152 as Kaiming He's release.
* :mod:`~hotcold.caffe.netgen.build`: the package-data prototxts they render
  (``hotcold models build``).

Both generators take ``width`` and ``num_classes`` for small stand-ins of the
real architectures; the shipped files are the published full-size nets.
"""
from hotcold.caffe.netgen.googlenet import googlenet, quick_solver
from hotcold.caffe.netgen.resnet import resnet152

__all__ = ["googlenet", "quick_solver", "resnet152"]
