"""Device selection: what the build can do, and a GPU asked for where there is none is an error naming the fix."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hotcold.caffe import runtime
from hotcold.caffe.zoo import load_model
from hotcold.cli import main
from hotcold.pipeline.config import load_experiment


@pytest.fixture
def cpu_only_build():
    if runtime.cuda_status().built_with_cuda:
        pytest.skip("this pycaffe is a CUDA build")


@pytest.fixture
def cuda_build_without_gpu():
    status = runtime.cuda_status()
    if not status.built_with_cuda or status.devices:
        pytest.skip("needs the CUDA build on a machine without a GPU (CI runs tests/caffe so)")
    return status


def test_cuda_status_of_a_cpu_only_build(cpu_only_build):
    status = runtime.cuda_status()
    assert status.runtime_version is None and status.devices == ()
    assert "CPU-only" in status.problem and "bash scripts/setup.sh --cuda" in status.problem
    assert runtime.check_device("cpu") == "cpu"


def test_doctor_says_whether_the_build_has_cuda(cpu_only_build):
    done = subprocess.run([str(Path(sys.executable).parent / "hotcold"), "doctor"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "CUDA" in done.stdout and "not in this build (CPU only); for GPUs: bash scripts/setup.sh --cuda" \
        in done.stdout


@pytest.mark.parametrize("argv", [
    ["generate", "--weights", "missing.caffemodel", "--images", "missing", "--out", "OUT", "--gpu", "0"],
    ["generate", "--weights", "missing.caffemodel", "--images", "missing", "--out", "OUT", "--device", "gpu"],
    ["run", "mnist_quick", "--out", "OUT", "--gpu", "1"],
])
def test_cli_gpu_on_a_cpu_only_build(argv, cpu_only_build, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(out) if a == "OUT" else a for a in argv]) == 2
    err = capsys.readouterr().err
    assert "this Caffe build is CPU-only; build and link the CUDA one with: bash scripts/setup.sh --cuda" in err
    assert not out.exists()


def test_yaml_device_on_a_cpu_only_build(cpu_only_build, tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text("name: gpu_run\ndevice: gpu:0\n")
    with pytest.raises(ValueError, match=r"device: device 'gpu:0' asked for, but this Caffe build is CPU-only.*"
                                         r"bash scripts/setup.sh --cuda"):
        load_experiment(path)


def test_cli_device_replaces_the_yaml_device_before_it_is_checked(cpu_only_build, tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text("name: gpu_run\ndevice: gpu:0\n")
    assert load_experiment(path, device="cpu").device == "cpu"
    with pytest.raises(ValueError, match="device 'gpu:2' asked for, but this Caffe build is CPU-only"):
        load_experiment("mnist_quick", device="gpu:2")


def test_cuda_build_without_gpu_reports_why_and_refuses_the_gpu(cuda_build_without_gpu, lenet_weights):
    assert cuda_build_without_gpu.runtime_version.startswith("13.")
    assert cuda_build_without_gpu.problem
    assert runtime.check_device("gpu:0") == "gpu:0"  # the build can; this machine cannot
    with pytest.raises(RuntimeError, match=r"'gpu:0' asked for, but the CUDA runtime sees 0 GPU\(s\): "
                                           + re.escape(cuda_build_without_gpu.problem)):
        load_model("lenet").classifier(lenet_weights, device="gpu:0")
    # ... while the CPU path of the same build works (training included: the lenet_weights fixture).
    assert load_model("lenet").classifier(lenet_weights).classify(np.zeros((2, 28, 28), np.uint8)).shape == (2,)


def test_missing_gpu_of_a_cuda_build_is_an_error_not_an_abort(monkeypatch):
    # A CUDA build on a machine without the GPU: set_device refuses before Caffe's CUDA_CHECK could abort.
    no_driver = runtime.CudaStatus(True, "13.0", None, (), "no NVIDIA driver found (libcuda.so.1)")
    monkeypatch.setattr(runtime, "cuda_status", lambda: no_driver)
    with pytest.raises(RuntimeError, match=r"'gpu:1' asked for, but the CUDA runtime sees 0 GPU\(s\): no NVIDIA "
                                           r"driver found"):
        runtime.set_device("gpu:1")
    one = runtime.CudaStatus(True, "13.0", "13.0", (runtime.CudaDevice(0, "Tesla T4", "7.5"),), "")
    monkeypatch.setattr(runtime, "cuda_status", lambda: one)
    with pytest.raises(RuntimeError, match=r"sees 1 GPU\(s\): gpu:0 \(Tesla T4\)"):
        runtime.set_device("gpu:1")


@pytest.mark.parametrize("argv", [
    ["run", "mnist_quick", "--out", "OUT", "--gpu", "1"],
    ["generate", "--weights", "missing.caffemodel", "--images", "missing", "--out", "OUT", "--gpu", "1"],
])
def test_cli_missing_gpu_fails_before_any_work(argv, monkeypatch, tmp_path, capsys):
    one = runtime.CudaStatus(True, "13.0", "13.0", (runtime.CudaDevice(0, "Tesla T4", "7.5"),), "")
    monkeypatch.setattr(runtime, "cuda_status", lambda: one)
    out = tmp_path / "out"
    assert main([str(out) if a == "OUT" else a for a in argv]) == 2
    assert "'gpu:1' asked for, but the CUDA runtime sees 1 GPU(s): gpu:0 (Tesla T4)" in capsys.readouterr().err
    assert not out.exists()
