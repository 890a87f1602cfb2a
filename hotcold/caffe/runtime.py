"""The single place where hotcold imports pycaffe.

Caffe's glog output is silenced unless verbose logging is asked for
(``HOTCOLD_VERBOSE=1`` or :func:`import_caffe(verbose=True)`); glog reads its
level when ``caffe`` is first imported, so the choice is made here, once.
"""
from __future__ import annotations

import ctypes
import functools
import os
import threading
from dataclasses import dataclass
from types import ModuleType

CUDA_SETUP = "bash scripts/setup.sh --cuda"
"""The command that builds the CUDA pycaffe and links it into the project's venv."""
OLDEST_CUDA13_ARCH = 75
"""The oldest GPU architecture CUDA 13 still builds for (sm_75, Turing)."""

_INSTALL_HINT = (
    "pycaffe (BVLC Caffe with hotcold's backward-from-blob patch) is not importable "
    "from this Python. Build and link it with: bash caffe_patch/build.sh "
    "(or bash scripts/setup.sh for the whole setup)."
)


BLAS_THREADS = "1"
"""OpenBLAS threads of Caffe, unless ``OPENBLAS_NUM_THREADS`` is set: results are bitwise the same for one
count only, so hotcold fixes it; parallelism comes from units (docs/execution.md) and PASS threads."""


def import_caffe(verbose: bool | None = None) -> ModuleType:
    """Import and return the patched ``caffe`` module in CPU mode.

    Parameters
    ----------
    verbose:
        Keep Caffe's glog INFO/WARNING output. ``None`` reads ``HOTCOLD_VERBOSE``.

    Raises
    ------
    ImportError
        With the command that builds pycaffe, when it is missing or unpatched.
    """
    if verbose is None:
        verbose = os.environ.get("HOTCOLD_VERBOSE", "") not in ("", "0")
    os.environ.setdefault("GLOG_minloglevel", "0" if verbose else "2")
    # OpenBLAS splits a product differently for other thread counts, and Caffe's results change in the last
    # bits: one BLAS thread everywhere (as Dask's workers have) keeps every executor and machine identical.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)
    try:
        import caffe
    except ImportError as exc:
        raise ImportError(f"{_INSTALL_HINT} ({exc})") from exc
    if not hasattr(caffe.Net, "_backward_from_blob"):
        raise ImportError(
            f"the caffe module at {caffe.__file__} lacks hotcold's backward-from-blob "
            f"patch. {_INSTALL_HINT}"
        )
    return caffe


def caffe_pb2() -> ModuleType:
    """Caffe's protobuf messages (``caffe.proto.caffe_pb2``) from the patched build."""
    import_caffe()
    from caffe.proto import caffe_pb2 as pb2

    return pb2


@functools.lru_cache(maxsize=1)
def build_info() -> dict[str, str]:
    """The ``BUILDINFO`` that ``caffe_patch/build.sh`` wrote beside pycaffe.

    Keys include ``source``, ``caffe_commit``, ``patch_hash``, ``mode`` (cpu or
    cuda), ``blas`` and ``build_seconds``. Empty when pycaffe was built elsewhere.
    """
    caffe = import_caffe()
    path = os.path.join(os.path.dirname(caffe.__file__), os.pardir, os.pardir, "BUILDINFO")
    if not os.path.isfile(path):
        return {}
    info = {}
    with open(path) as fh:
        for line in fh:
            key, sep, value = line.partition(":")
            if sep:
                info[key.strip()] = value.strip()
    return info


@dataclass(frozen=True)
class CudaDevice:
    """One GPU as the CUDA runtime of the Caffe build sees it (``gpu:<index>``)."""

    index: int
    name: str
    compute_capability: str
    """``major.minor``, e.g. ``8.6``; the build runs on it when its ``cuda_arch`` has that (or an older
    architecture's PTX for the driver to compile)."""


@dataclass(frozen=True)
class CudaStatus:
    """What the imported pycaffe can do on GPUs: ``hotcold doctor`` prints it, device checks use it."""

    built_with_cuda: bool
    """Whether pycaffe's library links the CUDA runtime (a ``--cuda`` build)."""
    runtime_version: str | None
    """The CUDA runtime (libcudart) version Caffe was linked with, e.g. ``13.0``; None on a CPU-only build."""
    driver_version: str | None
    """The newest CUDA version the installed NVIDIA driver supports; None without a driver."""
    devices: tuple[CudaDevice, ...]
    """The GPUs the runtime sees (``CUDA_VISIBLE_DEVICES`` applies)."""
    problem: str
    """Why there are no devices, with the fix; empty when there are some."""


def _loaded_library(stem: str) -> str | None:
    """The path of a shared library mapped into this process whose name starts with ``stem``."""
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.rstrip("\n").partition("/")[2]
                if path and os.path.basename(path).startswith(stem):
                    return "/" + path
    except OSError:
        return None
    return None


def _cuda_version(number: int) -> str:
    """CUDA's encoded version (1000 * major + 10 * minor) as ``major.minor``."""
    return f"{number // 1000}.{number % 1000 // 10}"


@functools.lru_cache(maxsize=1)
def cuda_status() -> CudaStatus:
    """Whether the Caffe build has CUDA, and which GPUs its CUDA runtime sees.

    Asks the CUDA runtime that pycaffe loaded (through ``ctypes``), so it
    neither switches Caffe's mode nor needs a GPU: on a machine without one it
    reports the reason. Cached for the process.
    """
    import_caffe()
    # build.sh's BUILDINFO decides (another library of the process may have loaded a libcudart); for a pycaffe
    # built elsewhere, whether the CUDA runtime came in with it.
    mode = build_info().get("mode")
    path = _loaded_library("libcudart.so")
    if mode == "cpu" or (mode is None and path is None):
        return CudaStatus(False, None, None, (), f"this Caffe build is CPU-only; for GPUs run: {CUDA_SETUP}")
    if path is None:
        return CudaStatus(True, None, None, (), f"the CUDA build's libcudart is not loaded; rebuild: {CUDA_SETUP}")
    cudart = ctypes.CDLL(path)
    cudart.cudaGetErrorString.restype = ctypes.c_char_p
    value = ctypes.c_int()
    runtime = _cuda_version(value.value) if cudart.cudaRuntimeGetVersion(ctypes.byref(value)) == 0 else None
    driver = None
    if cudart.cudaDriverGetVersion(ctypes.byref(value)) == 0 and value.value > 0:
        driver = _cuda_version(value.value)
    if driver is None:
        return CudaStatus(True, runtime, None, (), "no NVIDIA driver found (libcuda.so.1); install the driver "
                                                   "of the GPU, or run in a container started with --gpus")
    error = cudart.cudaGetDeviceCount(ctypes.byref(value))
    if error != 0:
        reason = cudart.cudaGetErrorString(error).decode(errors="replace")
        return CudaStatus(True, runtime, driver, (), f"the CUDA runtime sees no GPU: {reason} (CUDA error "
                                                     f"{error}; driver supports CUDA {driver}, build uses {runtime})")
    devices = []
    for index in range(value.value):
        # cudaDeviceProp starts with char name[256] in every CUDA version; the buffer is larger than the struct.
        props = ctypes.create_string_buffer(16384)
        name = props.raw[:256].split(b"\0")[0].decode() if cudart.cudaGetDeviceProperties(props, index) == 0 \
            else "unknown"
        major, minor = ctypes.c_int(), ctypes.c_int()
        cudart.cudaDeviceGetAttribute(ctypes.byref(major), 75, index)  # cudaDevAttrComputeCapabilityMajor
        cudart.cudaDeviceGetAttribute(ctypes.byref(minor), 76, index)  # cudaDevAttrComputeCapabilityMinor
        devices.append(CudaDevice(index, name, f"{major.value}.{minor.value}"))
    return CudaStatus(True, runtime, driver, tuple(devices), "" if devices else "the CUDA runtime sees no GPU")


def check_device(device: str, *, build: bool = True) -> str:
    """Validate a device name (``"cpu"``, ``"gpu"`` or ``"gpu:N"``) without touching Caffe's state.

    Whether GPU ``N`` exists is checked where the device is set (:func:`set_device`), on the machine
    that runs the work.

    Parameters
    ----------
    build:
        Also check that this machine's Caffe build has CUDA. False where the work may run elsewhere: an
        experiment YAML is checked where it is loaded, while its units may run on Dask workers with a CUDA
        build (:func:`require_gpu` checks the build where they run).

    Raises
    ------
    ValueError
        For another string, or a GPU on a CPU-only build (Caffe would abort), naming the fix.
    """
    if device == "cpu":
        return device
    name, _, index = str(device).partition(":")
    if name != "gpu" or (index and not index.isdigit()):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got {device!r}")
    if build and not cuda_status().built_with_cuda:
        raise ValueError(
            f"device {device!r} asked for, but this Caffe build is CPU-only; build and link the CUDA one "
            f"with: {CUDA_SETUP} (or use device 'cpu')"
        )
    return device


def runs_on(compute_capability: str, cuda_arch: str) -> bool:
    """Whether a build for the architectures ``cuda_arch`` (BUILDINFO's ``"75 80 90"``) runs on a GPU.

    build.sh compiles a binary for each architecture and PTX for the newest. A binary for ``sm_XY``
    runs on a GPU of the same major version X with minor version >= Y; the PTX runs, compiled by the
    driver, on every GPU at least as new as that architecture.
    """
    major, minor = (int(part) for part in compute_capability.split("."))
    arches = [int(a) for a in cuda_arch.split()]
    if not arches:
        return False
    binary = any(a // 10 == major and a % 10 <= minor for a in arches)
    return binary or max(arches) <= 10 * major + minor


def rebuild_hint(compute_capability: str, cuda_arch: str) -> str:
    """What to do about a GPU a build for ``cuda_arch`` has no code for."""
    cc = compute_capability.replace(".", "")
    if int(cc) < OLDEST_CUDA13_ARCH:
        return (f"no CUDA 13 build runs on it (CUDA 13 builds sm_{OLDEST_CUDA13_ARCH} and newer); use device "
                "'cpu' or a newer GPU")
    return f'rebuild with: {CUDA_SETUP} --cuda-arch "{cuda_arch} {cc}"'


def require_gpu(device: str) -> int:
    """The index of GPU ``device`` (``"gpu"`` or ``"gpu:N"``) after checking that this machine has it.

    :func:`set_device` calls it; ``hotcold run`` calls it before any unit starts when the units run on this
    machine.

    Raises
    ------
    ValueError
        As :func:`check_device`.
    RuntimeError
        When the CUDA runtime does not see the GPU, with the GPUs it sees or why there are none; or when the
        build has no code for the GPU's architecture (Caffe's first kernel would abort), naming the fix.
    """
    check_device(device)
    index = int(device.partition(":")[2] or 0)
    status = cuda_status()
    if index >= len(status.devices):
        seen = ", ".join(f"gpu:{d.index} ({d.name})" for d in status.devices) or status.problem
        raise RuntimeError(f"device {device!r} asked for, but the CUDA runtime sees {len(status.devices)} GPU(s): "
                           f"{seen}")
    gpu = status.devices[index]
    arch = build_info().get("cuda_arch", "")
    if arch and arch != "none" and not runs_on(gpu.compute_capability, arch):
        raise RuntimeError(f"device {device!r} is a {gpu.name} (compute capability {gpu.compute_capability}), but "
                           f"this Caffe build has code for sm_{arch.replace(' ', ', sm_')} only; "
                           + rebuild_hint(gpu.compute_capability, arch))
    return index


_thread_state = threading.local()


def set_device(device: str) -> None:
    """Put Caffe on ``device`` in the calling thread: the one place hotcold switches Caffe's mode.

    Caffe keeps its mode and device per thread (a thread-local ``Caffe``
    singleton), so a net must run in a thread where its device was set. The
    last device set is remembered per thread, so calling this before every
    Caffe call costs nothing when nothing changes.

    Raises
    ------
    ValueError
        As :func:`check_device`.
    RuntimeError
        When the GPU does not exist here (Caffe would abort), with the GPUs there are or why there are none.
    """
    if getattr(_thread_state, "device", None) == device:
        return
    check_device(device)
    caffe = import_caffe()
    if device == "cpu":
        caffe.set_mode_cpu()
    else:
        caffe.set_device(require_gpu(device))
        caffe.set_mode_gpu()
    _thread_state.device = device
