"""``hotcold doctor``: what hotcold runs on, whether B_l works, and how to fix what is missing."""
from __future__ import annotations

import hashlib
import importlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hotcold.caffe.runtime import CUDA_SETUP

_CHECKOUT = Path(__file__).resolve().parents[2]
"""The repository root when hotcold runs from a checkout (its patches are compared with the build)."""
BUILD = "bash caffe_patch/build.sh"

# A tiny net: B_l from the hidden blob must equal diff @ W1 (a linear layer).
_PROBE_NET = """
name: "hotcold_doctor_probe"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 1 dim: 3 dim: 3 } } }
layer { name: "hidden" type: "InnerProduct" bottom: "data" top: "hidden"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "hidden" top: "hidden" }
layer { name: "out" type: "InnerProduct" bottom: "hidden" top: "out"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
"""


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, what was found, and the fix."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


def _patch_hash(folder: str = "") -> str | None:
    """The SHA-256 prefix build.sh records for ``caffe_patch/patches/<folder>/*.patch`` (None outside a checkout)."""
    patches = sorted((_CHECKOUT / "caffe_patch" / "patches" / folder).glob("*.patch"))
    if not patches:
        return None
    return hashlib.sha256(b"".join(p.read_bytes() for p in patches)).hexdigest()[:16]


def _python_packages() -> list[Check]:
    checks = []
    for module, package in [("numpy", "numpy"), ("cv2", "opencv-python-headless"),
                            ("scipy", "scipy"), ("lmdb", "lmdb"), ("yaml", "pyyaml"),
                            ("google.protobuf", "protobuf"), ("skimage", "scikit-image"),
                            ("six", "six"), ("matplotlib", "matplotlib"), ("tqdm", "tqdm")]:
        try:
            mod = importlib.import_module(module)
            checks.append(Check(package, True, getattr(mod, "__version__", "installed")))
        except ImportError as exc:
            checks.append(Check(package, False, str(exc), f"{sys.executable} -m pip install {package}"))
    return checks


def _caffe_checks() -> list[Check]:
    from hotcold.caffe.runtime import build_info, import_caffe

    try:
        caffe = import_caffe()
    except ImportError as exc:
        return [Check("pycaffe", False, str(exc), BUILD)]
    info = build_info()
    checks = [Check("pycaffe", True, os.path.dirname(caffe.__file__))]
    if not info:
        checks.append(Check("caffe build", False, "no BUILDINFO beside pycaffe: not built by hotcold",
                            BUILD))
        return checks + _cuda_checks(info)
    checks.append(Check("caffe source", True, f"{info.get('caffe_version')} ({info.get('source')})"))
    want = _patch_hash()
    have = info.get("patch_hash")
    checks.append(Check("patch hash", want is None or want == have,
                        f"{have} (repository patches: {want})",
                        f"{BUILD}   # the build predates the current patches"))
    if info.get("mode") == "cuda":
        want, have = _patch_hash("cuda"), info.get("cuda_patch_hash")
        checks.append(Check("CUDA patch hash", want is None or want == have,
                            f"{have} (repository patches/cuda: {want})",
                            f"{CUDA_SETUP} --force   # the build predates the current CUDA patches"))
    checks.append(Check("BLAS", True, info.get("blas", "unknown")))
    checks += _cuda_checks(info)
    checks.append(_probe_backward_from_blob(caffe))
    return checks


def _cuda_checks(info: dict[str, str]) -> list[Check]:
    """The build's CUDA, and the GPUs it sees. A CUDA build on a machine without a GPU is not a fault here:
    it runs on the CPU; asking it for a GPU there is the error (``set_device``)."""
    from hotcold.caffe.runtime import cuda_status, rebuild_hint, runs_on

    status = cuda_status()
    if not status.built_with_cuda:
        return [Check("CUDA", True, f"not in this build (CPU only); for GPUs: {CUDA_SETUP}")]
    built = f"CUDA {status.runtime_version}, architectures {info.get('cuda_arch', 'unknown')}, no cuDNN"
    driver = f"driver supports CUDA {status.driver_version}" if status.driver_version else "no NVIDIA driver"
    arch = info.get("cuda_arch", "")
    without_code = [d for d in status.devices if arch and not runs_on(d.compute_capability, arch)]
    if status.devices:
        seen = "; ".join(f"gpu:{d.index} {d.name} (compute {d.compute_capability}"
                         + (", no code for it in this build)" if d in without_code else ")") for d in status.devices)
    else:
        seen = f"none: {status.problem}"
    fixes = "; ".join(f"gpu:{d.index}: {rebuild_hint(d.compute_capability, arch)}" for d in without_code)
    return [Check("CUDA", True, f"{built}; {driver}"), Check("GPUs", not without_code, seen, fixes)]


def _probe_backward_from_blob(caffe) -> Check:
    from hotcold.caffe.runtime import set_device

    set_device("cpu")
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as fh:
        fh.write(_PROBE_NET)
    try:
        net = caffe.Net(fh.name, caffe.TEST)
    finally:
        os.unlink(fh.name)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.normal(size=net.blobs["data"].data.shape)
    net.forward()
    diff = rng.normal(size=net.blobs["hidden"].data.shape).astype(np.float32)
    out = net.backward(hidden=diff)
    mask = net.blobs["hidden"].data > 0
    expected = ((diff * mask) @ net.params["hidden"][0].data).reshape(out["data"].shape)
    error = float(np.abs(out["data"] - expected).max())
    ok = error < 1e-4
    return Check("backward from blob", ok, f"max error {error:.2e} on a probe net",
                 f"{BUILD} --force   # the patch is missing or broken")


def run_doctor() -> list[Check]:
    """All checks, in report order."""
    checks = [Check("python", sys.version_info >= (3, 10), f"{sys.version.split()[0]} ({sys.executable})",
                    "use Python >= 3.10")]
    checks += _python_packages()
    checks += _caffe_checks()
    mnist = os.environ.get("HOTCOLD_MNIST_DIR")
    checks.append(Check("MNIST", True, f"HOTCOLD_MNIST_DIR={mnist}" if mnist else
                        "HOTCOLD_MNIST_DIR unset: 'hotcold data mnist' will download"))
    return checks


def main() -> int:
    """Print the report; non-zero exit when something is missing."""
    checks = run_doctor()
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok ' if c.ok else 'BAD'} {c.name:<{width}}  {c.detail}")
        if not c.ok and c.fix:
            print(f"    {'':<{width}}  fix: {c.fix}")
    bad = [c for c in checks if not c.ok]
    print(f"\n{len(checks) - len(bad)} ok, {len(bad)} missing")
    return 1 if bad else 0
