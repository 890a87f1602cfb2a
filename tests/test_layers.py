"""The package's layers: core < caffe < data < report < pipeline < cli, no upward imports, no cycles."""
from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hotcold"
LAYERS = ["core", "caffe", "data", "report", "pipeline", "cli"]
"""Bottom to top: a module may import its own layer and the layers before it."""
ROOT_HELPERS = {"_io", "_version", "_guard"}
"""Private helpers of the package root, importable from every layer (they import only each other)."""


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    """Every hotcold module a file imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hotcold"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hotcold"):
            found.add(node.module)
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("module", sorted(_modules()))
def test_no_module_imports_upward(module: str) -> None:
    layer = _layer(module)
    for target in _imports(_modules()[module]):
        target_layer = _layer(target)
        if layer is None:
            continue  # the package root and its helpers sit beside the layers
        if target_layer is None:
            helper = target.split(".")[1] if "." in target else ""
            assert helper in ROOT_HELPERS, f"{module} imports {target}, which is above every layer"
            continue
        assert LAYERS.index(target_layer) <= LAYERS.index(layer), f"{module} ({layer}) imports {target} upward"


def test_core_imports_nothing_of_hotcold_but_core() -> None:
    for module, path in _modules().items():
        if _layer(module) == "core":
            outside = {t for t in _imports(path) if _layer(t) != "core"}
            assert not outside, f"{module} imports {outside}"


def test_root_helpers_import_only_each_other() -> None:
    for helper in ROOT_HELPERS:
        assert _imports(PACKAGE / f"{helper}.py") <= {f"hotcold.{h}" for h in ROOT_HELPERS}


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: {t for t in _imports(p) if t in modules and t != m} for m, p in modules.items()}
    # Package __init__ files re-export their own layer; only cycles between plain modules count.
    plain = {m for m, p in modules.items() if p.name != "__init__.py"}
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m] & plain):
            if state.get(t) == 1:
                raise AssertionError(f"import cycle: {' -> '.join(stack[stack.index(t):] + [t])}")
            if t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(plain):
        if m not in state:
            visit(m, [m])


def test_core_runs_without_caffe_or_matplotlib() -> None:
    code = ("import sys; sys.modules['caffe'] = None; sys.modules['matplotlib'] = None\n"
            "import hotcold.core\n"
            "bad = sorted(m for m in sys.modules if m.startswith('hotcold.') and not m.startswith('hotcold.core')"
            " and m.split('.')[1] not in ('_deprecated', '_version', '_guard', '_io'))\n"
            "assert not [m for m in bad if not m.startswith('hotcold.caffe')], bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("old, name, new", [("hotcold.search", "line_search", "hotcold.core.search"),
                                            ("hotcold.caffe_net", "CaffeClassifier", "hotcold.caffe.classifier"),
                                            ("hotcold.train", "train", "hotcold.caffe.train"),
                                            ("hotcold.train", "shuffled_copy", "hotcold.caffe.lmdb_io"),
                                            ("hotcold.train", "error_rate", "hotcold.pipeline.evaluation"),
                                            ("hotcold.experiment", "load_experiment", "hotcold.pipeline.config"),
                                            ("hotcold.models", "load_model", "hotcold.caffe.zoo")])
def test_old_module_names_still_import_with_a_warning(old: str, name: str, new: str) -> None:
    code = (f"import warnings; warnings.simplefilter('error')\n"
            f"import importlib, hotcold\n"
            f"try:\n    importlib.import_module({old!r})\n"
            f"except DeprecationWarning as w:\n    assert {new.rsplit('.', 1)[0]!r} in str(w), w\n"
            f"else:\n    raise SystemExit('no DeprecationWarning')\n"
            f"warnings.simplefilter('ignore')\n"
            f"old = importlib.import_module({old!r}); new = importlib.import_module({new!r})\n"
            f"assert getattr(old, {name!r}) is getattr(new, {name!r})\n"
            f"assert new.__spec__.name == {new!r}\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_python_names_work_twice_in_both_import_orders() -> None:
    for first in ("import hotcold.core.generator\nimport hotcold", "import hotcold\nimport hotcold.core.generator"):
        code = (f"{first}\n"
                "for _ in range(2):\n"
                "    assert callable(hotcold.generate) and callable(hotcold.pass_score)\n"
                "    assert callable(hotcold.load_model) and isinstance(hotcold.CaffeClassifier, type)\n")
        subprocess.run([sys.executable, "-c", code], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import hotcold

        assert hotcold.generate.__module__ == "hotcold.core.generator"
