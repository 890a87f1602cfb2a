"""CaffeClassifier: bad input becomes a Python error before Caffe can abort."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.caffe.classifier import CaffeClassifier
from hotcold.caffe.prototxt import load_deploy
from hotcold.caffe.zoo import load_model, package_data

DEPLOY = package_data("prototxt") / "lenet_deploy.prototxt"


def test_bad_logits_blob_lists_valid_names(lenet_weights):
    with pytest.raises(ValueError, match=r"logits_blob 'fc8' is not a blob .* valid blob names: data, conv1"):
        CaffeClassifier(DEPLOY, lenet_weights, logits_blob="fc8")


def test_missing_files_and_malformed_prototxt(lenet_weights, tmp_path):
    with pytest.raises(ValueError, match="does not exist; pass the path of a .prototxt"):
        CaffeClassifier(tmp_path / "nope.prototxt", lenet_weights, logits_blob="ip2")
    with pytest.raises(ValueError, match="weights .* do not exist"):
        CaffeClassifier(DEPLOY, tmp_path / "nope.caffemodel", logits_blob="ip2")
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer { name: "x" type: "Input" top: "data" oops }')
    with pytest.raises(ValueError, match="not a valid Caffe NetParameter"):
        CaffeClassifier(bad, lenet_weights, logits_blob="ip2")
    garbage = tmp_path / "garbage.caffemodel"
    garbage.write_bytes(b"\xff\x00not a protobuf" * 10)
    with pytest.raises(ValueError, match="not a binary Caffe NetParameter"):
        CaffeClassifier(DEPLOY, garbage, logits_blob="ip2")


def test_weights_of_another_net_are_rejected_not_aborted(lenet_weights, tmp_path):
    wider = tmp_path / "wider.prototxt"
    wider.write_text(DEPLOY.read_text().replace("num_output: 500", "num_output: 400"))
    with pytest.raises(ValueError, match=r"layer 'ip1' has parameter shapes \[\[500, 800\], \[500\]\]"):
        CaffeClassifier(wider, lenet_weights, logits_blob="ip2")


def test_force_backward_is_added_and_params_frozen(lenet_weights, tmp_path):
    plain = tmp_path / "plain.prototxt"
    plain.write_text(DEPLOY.read_text().replace("force_backward: true", ""))
    deploy = load_deploy(plain)
    assert deploy.param.force_backward
    assert all(spec.lr_mult == 0 for layer in deploy.param.layer for spec in layer.param)
    clf = CaffeClassifier(plain, lenet_weights, logits_blob="ip2", input_scale=1 / 256)
    grad = clf.backprop(np.full((2, 28, 28), 100, np.uint8), "ip2", np.ones((2, 10), np.float32))
    assert np.abs(grad).max() > 0


def test_input_validation(lenet):
    with pytest.raises(TypeError, match="images must be uint8"):
        lenet.predict(np.zeros((1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="shape N x 28 x 28"):
        lenet.predict(np.zeros((1, 32, 32), np.uint8))
    with pytest.raises(ValueError, match="is not a blob"):
        lenet.backprop(np.zeros((1, 28, 28), np.uint8), "fc7", np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match="device must be"):
        load_model("lenet").classifier(lenet.weights, device="tpu")


def test_batches_larger_than_batch_size_match(lenet, mnist):
    images = mnist.test_images[:1100]
    small = load_model("lenet").classifier(lenet.weights, batch_size=64)
    np.testing.assert_allclose(small.predict(images), lenet.predict(images), rtol=1e-5, atol=1e-5)


def test_color_layout_channel_swap_and_mean(color_net):
    """A 3-channel net: the gradient comes back in the caller's HxWxC RGB layout, in pixel units."""
    proto, weights, net = color_net
    w = net.params["fc"][0].data.reshape(3, 3, 4, 5)  # (class, BGR channel, H, W)
    clf = CaffeClassifier(proto, weights, logits_blob="fc", input_scale=0.5, mean=[10, 20, 30],
                          channel_swap=[2, 1, 0])
    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 4, 5, 3)).astype(np.uint8)
    bgr_input = (rgb[..., ::-1].astype(float) - [10, 20, 30]).transpose(0, 3, 1, 2) * 0.5
    expected_logits = bgr_input.reshape(2, -1) @ net.params["fc"][0].data.T + net.params["fc"][1].data
    np.testing.assert_allclose(clf.predict(rgb), expected_logits, rtol=1e-4, atol=1e-3)
    grad = clf.backprop(rgb, "fc", np.array([[1.0, 0, 0]] * 2, np.float32))
    expected = (w[0] * 0.5).transpose(1, 2, 0)[..., ::-1]  # back to H x W x RGB
    np.testing.assert_allclose(grad[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("edit, message", [
    (('bottom: "pool2"', 'bottom: "pool9"'), "reads bottom 'pool9', which no earlier layer produces"),
    (('type: "ReLU"', 'type: "ReLu"'), "has type 'ReLu', which this Caffe build does not know"),
])
def test_prototxt_errors_caffe_would_abort_on_are_python_errors(lenet_weights, tmp_path, edit, message):
    broken = tmp_path / "broken.prototxt"
    text = DEPLOY.read_text()
    assert edit[0] in text
    broken.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ValueError, match=message):
        CaffeClassifier(broken, lenet_weights, logits_blob="ip2")


def test_input_blob_is_no_logits_blob(lenet_weights):
    with pytest.raises(ValueError, match="is the net's input"):
        CaffeClassifier(DEPLOY, lenet_weights, logits_blob="data")


def test_classifier_implements_the_core_protocol(lenet):
    from hotcold.core.classifier import Classifier

    assert isinstance(lenet, Classifier)


def test_a_net_used_from_another_thread_is_an_error_not_a_cpu_fallback(lenet, mnist):
    """Caffe's mode and device are per thread (Sec. 4.3's B_l runs where the net was built)."""
    import threading

    errors: list[BaseException] = []

    def use() -> None:
        try:
            lenet.classify(mnist.test_images[:4])
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            errors.append(exc)

    worker = threading.Thread(target=use)
    worker.start()
    worker.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert "built in another thread" in str(errors[0]) and "per thread" in str(errors[0])
    assert lenet.classify(mnist.test_images[:4]).shape == (4,)  # the building thread still works


def test_a_classifier_built_in_a_worker_thread_works_there(lenet_weights, mnist):
    import threading

    results: dict[str, np.ndarray] = {}

    def build_and_use() -> None:
        clf = load_model("lenet").classifier(lenet_weights)
        results["labels"] = clf.classify(mnist.test_images[:8])

    worker = threading.Thread(target=build_and_use)
    worker.start()
    worker.join()
    main = load_model("lenet").classifier(lenet_weights)
    np.testing.assert_array_equal(results["labels"], main.classify(mnist.test_images[:8]))


def test_gpu_on_a_cpu_only_build_is_a_clear_error(lenet_weights):
    from hotcold.caffe.runtime import cuda_status

    if cuda_status().built_with_cuda:
        pytest.skip("this pycaffe is a CUDA build")
    with pytest.raises(ValueError, match="CPU-only; build and link the CUDA one with: bash scripts/setup.sh --cuda"):
        load_model("lenet").classifier(lenet_weights, device="gpu:0")
    with pytest.raises(ValueError, match="device must be 'cpu', 'gpu' or 'gpu:N'"):
        load_model("lenet").classifier(lenet_weights, device="tpu")
