"""Fixtures of the Caffe layer's tests."""
from __future__ import annotations

import pytest


@pytest.fixture
def color_net(tmp_path):
    """A 3-channel linear net (Input 3 x 4 x 5 -> InnerProduct fc, 3 outputs) with seeded Gaussian weights:
    ``(prototxt path, weights path, pycaffe Net)``, for checks of channel order, means and pixel units."""
    from hotcold.caffe.runtime import import_caffe

    caffe = import_caffe()
    proto = tmp_path / "color.prototxt"
    proto.write_text(
        'name: "color" force_backward: true\n'
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 5 } } }\n'
        'layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"\n'
        '        inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 1 } } }\n')
    caffe.set_random_seed(3)
    net = caffe.Net(str(proto), caffe.TEST)
    weights = tmp_path / "color.caffemodel"
    net.save(str(weights))
    return proto, weights, net
