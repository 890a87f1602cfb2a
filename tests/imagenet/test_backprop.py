"""B_l (Sec. 4.3) from the penultimate blobs of the ImageNet architectures: seeding the blob below the
classifier with W^T s gives the same image gradient as seeding the logits with s."""
from __future__ import annotations

import numpy as np
import pytest

from hotcold.caffe.zoo import load_model
from hotcold.data.image_sets import read_image
from hotcold.data.imagenet import resize_image


@pytest.mark.parametrize("fixture, logits, below", [("googlenet_stand_in", "loss3/classifier", "pool5/7x7_s1"),
                                                    ("resnet_stand_in", "fc1000", "pool5")])
def test_backprop_from_the_pooled_features_matches_the_logits(fixture, logits, below, request, photo_folder):
    model_yaml = request.getfixturevalue(fixture)
    clf = load_model(model_yaml).classifier(model_yaml.parent / "weights.caffemodel")
    files = sorted(photo_folder.rglob("*.JPEG"))[:3]
    images = np.stack([resize_image(read_image(f, channels=3), 224, shorter_side=True) for f in files])
    seed = np.random.default_rng(0).normal(size=(len(images), clf.num_classes)).astype(np.float32)
    weight = clf.net.params[logits][0].data  # K x D
    from_logits = clf.backprop(images, logits, seed)
    features = clf.net.blobs[below].data.shape[1:]
    from_features = clf.backprop(images, below, (seed @ weight).reshape(len(images), *features))
    assert np.abs(from_logits).max() > 0
    np.testing.assert_allclose(from_features, from_logits, rtol=1e-3, atol=1e-4 * np.abs(from_logits).max())
    assert from_logits.shape == images.shape  # pixel units, the caller's H x W x RGB layout
