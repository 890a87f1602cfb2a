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
from hotcold.pipeline.runner import run_experiment


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
    # Loading checks the name only (the units may run on Dask workers with a CUDA build); running the
    # units here checks this machine's build before any work.
    path = tmp_path / "gpu.yaml"
    path.write_text("name: gpu_run\ndevice: gpu:0\n")
    assert load_experiment(path).device == "gpu:0"
    path.write_text("name: gpu_run\ndevice: tpu:0\n")
    with pytest.raises(ValueError, match=r"device: device must be 'cpu', 'gpu' or 'gpu:N', got 'tpu:0'"):
        load_experiment(path)
    path.write_text("name: gpu_run\ndevice: gpu:0\n")
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"device 'gpu:0' asked for, but this Caffe build is CPU-only.*"
                                         r"bash scripts/setup.sh --cuda"):
        run_experiment(path, out=out, progress=False)
    assert not out.exists()


def test_cli_device_replaces_the_yaml_device_before_it_is_checked(cpu_only_build, tmp_path):
    path = tmp_path / "gpu.yaml"
    path.write_text("name: gpu_run\ndevice: gpu:0\n")
    assert load_experiment(path, device="cpu").device == "cpu"
    assert load_experiment("mnist_quick", device="gpu:2").device == "gpu:2"


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


@pytest.mark.parametrize("cc, arch, ok", [
    ("7.5", "75", True), ("8.6", "80", True), ("8.0", "86", False), ("8.9", "75 80 86 89 90", True),
    ("9.0", "75 80", True), ("12.0", "75 80 86 89 90", True), ("7.0", "75 80 86 89 90", False),
    ("7.5", "80 86", False), ("8.6", "", False),
])
def test_runs_on_binaries_and_ptx(cc, arch, ok):
    # A binary for sm_XY runs on X.Z with Z >= Y; the newest architecture's PTX on every newer GPU.
    assert runtime.runs_on(cc, arch) is ok


def test_gpu_without_code_in_the_build_is_an_error_not_an_abort(monkeypatch):
    a100 = runtime.CudaStatus(True, "13.0", "13.0", (runtime.CudaDevice(0, "NVIDIA A100", "8.0"),), "")
    monkeypatch.setattr(runtime, "cuda_status", lambda: a100)
    monkeypatch.setattr(runtime, "build_info", lambda: {"mode": "cuda", "cuda_arch": "86"})
    with pytest.raises(RuntimeError, match=r"'gpu:0' is a NVIDIA A100 \(compute capability 8\.0\), but this Caffe "
                                           r"build has code for sm_86 only; rebuild with: bash scripts/setup.sh "
                                           r"--cuda --cuda-arch \"86 80\""):
        runtime.require_gpu("gpu:0")
    monkeypatch.setattr(runtime, "build_info", lambda: {"mode": "cuda", "cuda_arch": "75 80"})
    assert runtime.require_gpu("gpu") == 0
    v100 = runtime.CudaStatus(True, "13.0", "13.0", (runtime.CudaDevice(0, "Tesla V100", "7.0"),), "")
    monkeypatch.setattr(runtime, "cuda_status", lambda: v100)
    with pytest.raises(RuntimeError, match=r"no CUDA 13 build runs on it \(CUDA 13 builds sm_75 and newer\)"):
        runtime.require_gpu("gpu:0")


def test_doctor_marks_a_gpu_the_build_has_no_code_for(monkeypatch):
    from hotcold.caffe import doctor

    two = runtime.CudaStatus(True, "13.0", "13.0", (runtime.CudaDevice(0, "NVIDIA A100", "8.0"),
                                                     runtime.CudaDevice(1, "NVIDIA L4", "8.9")), "")
    monkeypatch.setattr(runtime, "cuda_status", lambda: two)
    cuda, gpus = doctor._cuda_checks({"cuda_arch": "86"})
    assert cuda.ok and not gpus.ok
    assert "gpu:0 NVIDIA A100 (compute 8.0, no code for it in this build); gpu:1 NVIDIA L4 (compute 8.9)" \
        == gpus.detail
    assert gpus.fix == 'gpu:0: rebuild with: bash scripts/setup.sh --cuda --cuda-arch "86 80"'
