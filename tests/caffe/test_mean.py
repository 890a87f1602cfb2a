"""Mean images (.binaryproto / .npy, center-cropped) in the Caffe classifier: Sec. 4's ImageNet nets subtract them."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.caffe.classifier import CaffeClassifier
from hotcold.caffe.mean import read_mean_file, resolve_mean
from hotcold.caffe.runtime import import_caffe


def _binaryproto(path, array):
    caffe = import_caffe()
    path.write_bytes(caffe.io.array_to_blobproto(array).SerializeToString())
    return path


def test_binaryproto_and_npy_read_the_same_image(tmp_path):
    mean = np.random.default_rng(0).uniform(0, 255, (1, 3, 6, 7)).astype(np.float32)
    np.save(tmp_path / "mean.npy", mean[0])
    a = read_mean_file(_binaryproto(tmp_path / "mean.binaryproto", mean))
    b = read_mean_file(tmp_path / "mean.npy")
    assert a.shape == b.shape == (3, 6, 7)
    np.testing.assert_array_equal(a, b)


def test_larger_mean_image_is_center_cropped_as_caffe_crops():
    mean = np.arange(3 * 256 * 256, dtype=np.float32).reshape(3, 256, 256)
    cropped = resolve_mean(mean, 3, 224, 224)
    assert cropped.shape == (3, 224, 224)
    np.testing.assert_array_equal(cropped, mean[:, 16:240, 16:240])  # offset (256 - 224) / 2


@pytest.mark.parametrize("mean, message", [
    ([1.0, 2.0], "scalar or 3 finite per-channel values"),
    (np.zeros((1, 8, 8)), "has 1 channels, the net's input has 3"),
    (np.zeros((3, 3, 8)), "smaller than the net's 4 x 4 input"),
    (np.full((3, 4, 4), np.nan), "finite C x H x W"),
])
def test_bad_means_name_the_problem(mean, message):
    with pytest.raises(ValueError, match=message):
        resolve_mean(mean, 3, 4, 4)


def test_bad_mean_files_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_mean_file(tmp_path / "missing.binaryproto")
    (tmp_path / "junk.binaryproto").write_bytes(b"\xff\xfe not protobuf \x00\x01")
    with pytest.raises(ValueError, match="not a Caffe BlobProto|holds 0 values"):
        read_mean_file(tmp_path / "junk.binaryproto")
    (tmp_path / "mean.txt").write_text("104 117 123")
    with pytest.raises(ValueError, match="expected a Caffe .binaryproto or a NumPy .npy"):
        read_mean_file(tmp_path / "mean.txt")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match="expected one C x H x W mean image"):
        read_mean_file(tmp_path / "flat.npy")


def test_classifier_subtracts_a_mean_image_and_returns_pixel_gradients(tmp_path, color_net):
    """Logits of (RGB -> BGR - mean image) * scale, and B_l in the caller's RGB pixel units."""
    proto, weights, net = color_net
    mean = np.random.default_rng(1).uniform(0, 255, (1, 3, 8, 9)).astype(np.float32)  # larger: cropped
    clf = CaffeClassifier(proto, weights, logits_blob="fc", input_scale=0.25,
                          mean=_binaryproto(tmp_path / "mean.binaryproto", mean), channel_swap=[2, 1, 0])
    rgb = np.random.default_rng(2).integers(0, 256, size=(2, 4, 5, 3)).astype(np.uint8)
    bgr = rgb[..., ::-1].astype(float).transpose(0, 3, 1, 2)
    x = (bgr - mean[0][:, 2:6, 2:7]) * 0.25
    expected = x.reshape(2, -1) @ net.params["fc"][0].data.T + net.params["fc"][1].data
    np.testing.assert_allclose(clf.predict(rgb), expected, rtol=1e-4, atol=1e-3)
    grad = clf.backprop(rgb, "fc", np.array([[0, 1.0, 0]] * 2, np.float32))
    w = net.params["fc"][0].data.reshape(3, 3, 4, 5)
    np.testing.assert_allclose(grad[1], (w[1] * 0.25).transpose(1, 2, 0)[..., ::-1], rtol=1e-5, atol=1e-6)
    assert clf.fingerprint()["mean"] != CaffeClassifier(proto, weights, logits_blob="fc").fingerprint()["mean"]


def test_resnet152_takes_its_mean_image_from_beside_the_installed_weights(tmp_path, monkeypatch):
    from hotcold.caffe.zoo import load_model

    monkeypatch.setenv("HOTCOLD_MODELS_DIR", str(tmp_path))
    model = load_model("resnet152")
    assert model.mean == tmp_path / "resnet152" / "ResNet_mean.binaryproto"
    with pytest.raises(ValueError, match="subtracts the mean image ResNet_mean.binaryproto, which is not at"):
        model.classifier(tmp_path / "any.caffemodel")
