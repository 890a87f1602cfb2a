"""Data sets of the paper's experiments: MNIST (Sec. 5.2) and InfiMNIST-style samples (Sec. 2, 5.2)."""
from hotcold.data.infimnist import InfimnistGenerator, InfimnistParams, infimnist_indices, write_infimnist_lmdb
from hotcold.data.mnist import (
    MNIST_DIR_ENV,
    MNIST_FILES,
    MNIST_MIRRORS,
    MnistData,
    MnistDownloadError,
    default_cache_dir,
    find_mnist_source,
    load_mnist,
    prepare_mnist,
    read_idx,
)

__all__ = [
    "InfimnistGenerator",
    "InfimnistParams",
    "infimnist_indices",
    "write_infimnist_lmdb",
    "MNIST_DIR_ENV",
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "MnistData",
    "MnistDownloadError",
    "default_cache_dir",
    "find_mnist_source",
    "load_mnist",
    "prepare_mnist",
    "read_idx",
]
