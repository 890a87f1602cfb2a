"""The single place where hotcold imports pycaffe.

Caffe's glog output is silenced unless verbose logging is asked for
(``HOTCOLD_VERBOSE=1`` or :func:`import_caffe(verbose=True)`); glog reads its
level when ``caffe`` is first imported, so the choice is made here, once.
"""
from __future__ import annotations

import functools
import os
import threading
from types import ModuleType

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


def check_device(device: str) -> str:
    """Validate a device name (``"cpu"``, ``"gpu"`` or ``"gpu:N"``) without touching Caffe's state.

    Raises
    ------
    ValueError
        For another string, or a GPU on a CPU-only build (Caffe would abort).
    """
    if device == "cpu":
        return device
    name, _, index = str(device).partition(":")
    if name != "gpu" or (index and not index.isdigit()):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got {device!r}")
    if build_info().get("mode", "cuda") != "cuda":
        raise ValueError(
            f"device {device!r} asked for, but this Caffe build is CPU-only; rebuild it with "
            "bash caffe_patch/build.sh --cuda, or use device='cpu'"
        )
    return device


_thread_state = threading.local()


def set_device(device: str) -> None:
    """Put Caffe on ``device`` in the calling thread: the one place hotcold switches Caffe's mode.

    Caffe keeps its mode and device per thread (a thread-local ``Caffe``
    singleton), so a net must run in a thread where its device was set. The
    last device set is remembered per thread, so calling this before every
    Caffe call costs nothing when nothing changes.
    """
    if getattr(_thread_state, "device", None) == device:
        return
    check_device(device)
    caffe = import_caffe()
    if device == "cpu":
        caffe.set_mode_cpu()
    else:
        caffe.set_device(int(device.partition(":")[2] or 0))
        caffe.set_mode_gpu()
    _thread_state.device = device
