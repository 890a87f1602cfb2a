"""An installed hotcold (a wheel, not the checkout) finds its model files and experiment configs."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DATA = ["hotcold/caffe/models/lenet.yaml", "hotcold/caffe/prototxts/lenet_deploy.prototxt",
                "hotcold/caffe/prototxts/lenet_train_test.prototxt", "hotcold/caffe/prototxts/lenet_solver.prototxt",
                "hotcold/pipeline/experiments/mnist_quick.yaml", "hotcold/caffe/models/bvlc_googlenet.yaml",
                "hotcold/caffe/models/resnet152.yaml"] + [
                f"hotcold/caffe/prototxts/{net}_{part}.prototxt"
                for net, part in (("bvlc_googlenet", "deploy"), ("bvlc_googlenet", "train_val"),
                                  ("bvlc_googlenet", "quick_solver"), ("resnet152", "deploy"),
                                  ("resnet152", "train_val"))]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    (path,) = out.glob("hotcold-*.whl")
    return path


def test_wheel_carries_the_package_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [p for p in PACKAGE_DATA if p not in names]
    assert not missing, f"the wheel lacks {missing}"


def test_installed_copy_loads_the_models_and_the_quick_experiment_from_elsewhere(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import hotcold, pathlib\n"
            f"assert pathlib.Path(hotcold.__file__).is_relative_to({str(target)!r}), hotcold.__file__\n"
            "from hotcold.caffe.zoo import load_model\n"
            "from hotcold.pipeline.config import load_experiment\n"
            "for name in ('lenet', 'bvlc_googlenet', 'resnet152'):\n"
            "    spec = load_model(name)\n"
            f"    assert spec.deploy_prototxt.is_file() and spec.deploy_prototxt.is_relative_to({str(target)!r})\n"
            "assert load_experiment('mnist_quick').name == 'mnist_quick'\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=elsewhere, env={"PYTHONPATH": str(target)})
