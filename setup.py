"""hotcold: PASS, hot/cold adversarial directions and hard positives on Caffe.

Rozsa, Rudd, Boult: "Adversarial Diversity and Hard Positive Generation",
CVPR Workshops 2016. pycaffe itself is built by caffe_patch/build.sh (not on
PyPI: the PyPI name "caffe" is an empty placeholder) and linked into the
virtual environment with a .pth file.
"""
from setuptools import find_packages, setup

setup(
    name="hotcold",
    version="0.2.0",
    description="Adversarial diversity and hard positive generation (Rozsa et al. 2016) on Caffe",
    long_description=__doc__,
    python_requires=">=3.10",
    packages=find_packages(include=["hotcold", "hotcold.*"]) + ["hotcold.caffe.models", "hotcold.caffe.prototxts",
                                                                  "hotcold.pipeline.experiments"],
    # The repository's models/, prototxt/ and experiments/ folders are package data.
    package_dir={"hotcold.caffe.models": "models", "hotcold.caffe.prototxts": "prototxt",
                 "hotcold.pipeline.experiments": "experiments"},
    package_data={"hotcold.caffe.models": ["*.yaml", "README.md"], "hotcold.caffe.prototxts": ["*.prototxt"],
                  "hotcold.pipeline.experiments": ["*.yaml"]},
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.5",
        "scipy>=1.9",
        "lmdb>=1.3",
        "pyyaml>=6.0",
        "protobuf>=3.20",
        "matplotlib>=3.6",
        "tqdm>=4.60",
        # the processes and dask executors (docs/execution.md)
        "dask[distributed]>=2024.1",
        # pycaffe's own imports
        "scikit-image>=0.19",
        "six>=1.16",
    ],
    extras_require={"test": ["pytest>=7", "wheel>=0.38", "scikit-image>=0.21"]},
    entry_points={"console_scripts": ["hotcold = hotcold.cli:main"]},
)
