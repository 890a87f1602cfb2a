"""Session fixtures: real MNIST and a LeNet trained on it with the real patched Caffe.

The LeNet is trained once per test session (a few hundred solver iterations
on real MNIST images, Caffe's LeNet solver), then shared by every test that
needs a trained network, e.g. the line-search minimality tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

LENET_ITERATIONS = 400


def pytest_configure(config) -> None:
    """Register the ``gpu`` marker. Without HOTCOLD_MNIST_DIR, use (or download and MD5-check) the cached
    MNIST copy.

    Offline and without a cache, the tests that need MNIST skip and say why.
    """
    config.addinivalue_line("markers", "imagenet: the ImageNet path on the real GoogLeNet / ResNet-152 "
                                       "architectures at reduced width (slower; part of every run, deselect with "
                                       "-m 'not imagenet')")
    config.addinivalue_line("markers", "gpu: needs a CUDA build of pycaffe (scripts/setup.sh --cuda) and a GPU; "
                                       "skipped, with the reason, where there is none")
    if os.environ.get("HOTCOLD_MNIST_DIR"):
        return
    from hotcold.data.mnist import MnistDownloadError, find_mnist_source

    try:
        os.environ["HOTCOLD_MNIST_DIR"] = str(find_mnist_source(None, timeout=5))
    except (MnistDownloadError, OSError, ValueError) as exc:
        print(f"\nhotcold tests: no MNIST ({exc}); tests that need it will skip")


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``gpu`` tests where pycaffe has no CUDA or sees no GPU, saying which."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_tests:
        return
    from hotcold.caffe.runtime import cuda_status

    try:
        status = cuda_status()
    except ImportError as exc:
        reason = f"needs a GPU: no pycaffe ({exc})"
    else:
        reason = "" if status.devices else f"needs a GPU: {status.problem}"
    if reason:
        for item in gpu_tests:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def mnist():
    """The verified MNIST copy named by HOTCOLD_MNIST_DIR (CI sets it) or downloaded into the cache."""
    source = os.environ.get("HOTCOLD_MNIST_DIR")
    if not source:
        pytest.skip("no MNIST: set HOTCOLD_MNIST_DIR to a folder with the four MNIST IDX .gz files")
    from hotcold.data.mnist import load_mnist

    return load_mnist(source)


@pytest.fixture(scope="session")
def mnist_lmdbs(mnist, tmp_path_factory) -> dict[str, Path]:
    """10K training and 2K test images as Caffe LMDBs."""
    from hotcold.caffe.lmdb_io import write_datum_lmdb

    root = tmp_path_factory.mktemp("mnist_lmdb")
    paths = {"train": root / "train.lmdb", "test": root / "test.lmdb"}
    write_datum_lmdb(paths["train"], mnist.train_images[:10000], mnist.train_labels[:10000])
    write_datum_lmdb(paths["test"], mnist.test_images[:2000], mnist.test_labels[:2000])
    return paths


@pytest.fixture(scope="session")
def lenet_weights(mnist_lmdbs, tmp_path_factory) -> Path:
    """A LeNet trained for LENET_ITERATIONS iterations on real MNIST images."""
    from hotcold.caffe.solver import SolverSettings
    from hotcold.caffe.train import train
    from hotcold.caffe.zoo import load_model

    out = tmp_path_factory.mktemp("lenet")
    settings = SolverSettings(seed=1, max_iter=LENET_ITERATIONS, snapshot_every=LENET_ITERATIONS)
    result = train(load_model("lenet"), out, settings, train_lmdb=mnist_lmdbs["train"], test_lmdb=mnist_lmdbs["test"])
    return Path(result.weights)


@pytest.fixture(scope="session")
def lenet(lenet_weights):
    """The trained LeNet as a CaffeClassifier (logits blob ip2, input scale 1/256)."""
    from hotcold.caffe.zoo import load_model

    return load_model("lenet").classifier(lenet_weights, batch_size=500)


@pytest.fixture(scope="session")
def correct_test_digits(lenet, mnist):
    """The first 60 MNIST test images the trained LeNet classifies correctly, and their labels."""
    images, labels = mnist.test_images[:200], mnist.test_labels[:200].astype(np.int64)
    ok = lenet.classify(images) == labels
    return images[ok][:60], labels[ok][:60]


SAMPLE_PHOTOS = {"n02123045": "chelsea", "n07920052": "coffee", "n04266014": "rocket", "n09835506": "astronaut"}
"""Class folders (WordNet IDs as in ImageNet) -> scikit-image's sample photo of that kind (a cat, a cup of coffee,
a rocket, a person): real photos for the ImageNet path, which cannot be downloaded here."""


@pytest.fixture(scope="session")
def photo_folder(tmp_path_factory) -> Path:
    """An ImageNet-like training folder: 4 class sub-folders of 3 JPEG crops of a real photo each."""
    import cv2
    import skimage.data

    root = tmp_path_factory.mktemp("photos") / "train"
    for wnid, name in SAMPLE_PHOTOS.items():
        photo = getattr(skimage.data, name)()
        (root / wnid).mkdir(parents=True)
        h, w = photo.shape[:2]
        for j in range(3):
            crop = photo[j * h // 10:h - j * h // 12, j * w // 9:w - j * w // 11]
            cv2.imwrite(str(root / wnid / f"{wnid}_{j}.JPEG"), np.ascontiguousarray(crop[..., ::-1]))
    return root
