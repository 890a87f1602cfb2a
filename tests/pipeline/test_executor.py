"""The executors with real Dask (a 2-process LocalCluster): same results, worker deaths, failures, slices."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hotcold.pipeline.executor import ExecutionSettings, UnitFailed, run_units
from hotcold.pipeline.runner import run_experiment
from hotcold.pipeline.units import Unit, read_manifest

REPO = Path(__file__).resolve().parents[2]
PROCESSES = ExecutionSettings(executor="processes", workers=2, retries=1)

TINY = """
name: tiny_exec
model: lenet
seed: 5
train: {{nets: 2, iterations: 100, snapshot_every: 50}}
generate: {{source_images: 40, scales: [1.0], chunk_size: 20}}
finetune:
  iterations: 30
  orderings: 1
  training_sets:
    - {{name: HC-D-1-1.05, methods: [HC-D-1x1.05]}}
evaluate: {{types: [FGS, HC-D-1], per_type: 10, source_images: 40}}
execution: {{shard_images: 20}}
data: {{source: {source}}}
fig6: {{ranges: [[0.5, 0.9], [0.9, 1.0]], methods: [FGS, HC-D-1], iterations: 20}}
infimnist: {{samples: 1000, nets: 1, iterations: 40}}
goodfellow: {{iterations: 60}}
"""


# ---------------------------------------------------------------- units for the fault tests (picklable by reference)

def write_unit(run: Path, inputs: dict, *, name: str, kill_once: bool = False, fail: bool = False) -> dict:
    """Appends its attempt to a log, dies once (SIGKILL) or raises when asked, then writes one output."""
    with open(run / "attempts.log", "a") as fh:
        fh.write(f"{name} {os.getpid()}\n")
    marker = run / f"{name}.killed"
    if kill_once and not marker.exists():
        marker.write_text("x")
        os.kill(os.getpid(), signal.SIGKILL)
    if fail:
        raise ValueError(f"{name} cannot work")
    (run / "out").mkdir(exist_ok=True)
    total = sum(v["value"] for v in inputs.values())
    (run / "out" / f"{name}.txt").write_text(str(total + 1))
    return {"value": total + 1, "path": f"out/{name}.txt"}


def _graph(kill: str | None = None, fail: str | None = None) -> list[Unit]:
    def unit(name: str, *needs: str) -> Unit:
        return Unit(name, write_unit, {"name": name.replace("/", "_"), "kill_once": name == kill,
                                       "fail": name == fail}, needs=needs)

    return [unit("a"), unit("b/1", "a"), unit("b/2", "a"), unit("c", "b/1", "b/2")]


def test_graph_runs_the_same_locally_and_on_dask(tmp_path):
    (tmp_path / "local").mkdir()
    (tmp_path / "dask").mkdir()
    local = run_units(_graph(), tmp_path / "local", "v", ExecutionSettings(), progress=False)
    dask = run_units(_graph(), tmp_path / "dask", "v", PROCESSES, progress=False)
    assert local == dask
    assert {k: v for k, v in local["c"].items() if k != "digest"} == {"value": 5, "path": "out/c.txt"}


def test_a_worker_killed_mid_unit_still_gives_a_complete_duplicate_free_result(tmp_path):
    (tmp_path / "run").mkdir()
    results = run_units(_graph(kill="b/2"), tmp_path / "run", "v", PROCESSES, progress=False)
    assert results["c"]["value"] == 5
    attempts = (tmp_path / "run" / "attempts.log").read_text().split()
    names = attempts[::2]
    assert names.count("b_2") == 2 and names.count("a") == names.count("c") == 1  # the killed unit ran again
    assert sorted(p.name for p in (tmp_path / "run" / "out").iterdir()) == ["a.txt", "b_1.txt", "b_2.txt", "c.txt"]
    assert all(read_manifest(tmp_path / "run", k) for k in ("a", "b/1", "b/2", "c"))


@pytest.mark.parametrize("settings", [ExecutionSettings(), PROCESSES], ids=["local", "processes"])
def test_a_failing_unit_stops_the_run_naming_its_key(tmp_path, settings):
    (tmp_path / "run").mkdir()
    with pytest.raises(UnitFailed, match=r"unit 'b/1' failed: ValueError: b_1 cannot work"):
        run_units(_graph(fail="b/1"), tmp_path / "run", "v", settings, progress=False)
    assert read_manifest(tmp_path / "run", "a") is not None  # finished units stay finished
    assert read_manifest(tmp_path / "run", "c") is None


def test_execution_settings_are_checked():
    with pytest.raises(ValueError, match="needs the scheduler's address"):
        ExecutionSettings(executor="dask")
    with pytest.raises(ValueError, match="executor must be one of"):
        ExecutionSettings(executor="threads")
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        ExecutionSettings(executor="processes", workers=0)


# ---------------------------------------------------------------- the real experiment

@pytest.fixture(scope="module")
def tiny(tmp_path_factory, mnist) -> Path:
    root = tmp_path_factory.mktemp("exec")
    config = root / "tiny.yaml"
    config.write_text(TINY.format(source=os.environ["HOTCOLD_MNIST_DIR"]))
    return config


@pytest.fixture(scope="module")
def local_run(tiny) -> Path:
    return run_experiment(tiny, out=tiny.parent / "local", progress=False)


def _compare(a: Path, b: Path) -> str:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_runs.py"), str(a), str(b)],
                          capture_output=True, text=True)
    return done.stdout


def test_processes_executor_gives_the_same_tables_and_lmdbs(tiny, local_run):
    dask_run = run_experiment(tiny, out=tiny.parent / "processes", progress=False, executor="processes", workers=2)
    report = _compare(local_run, dask_run)
    assert report.strip().endswith("ALL IDENTICAL"), report


def test_a_run_killed_during_adversarial_training_resumes_to_the_same_results(tiny, local_run, tmp_path):
    """SIGKILL `hotcold run` inside a Goodfellow unit after its first snapshot; the same command finishes the
    run, and every table, LMDB and weight file equals the uninterrupted run's."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "hotcold.cli", "run", str(tiny), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    snapshot = out / "goodfellow" / "base0_order0" / "snapshot_iter_50.solverstate"
    deadline = time.time() + 300
    while time.time() < deadline and not snapshot.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert snapshot.exists() and read_manifest(out, "goodfellow/base0_order0") is None, "the kill must land mid-unit"
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    record = json.loads((out / "goodfellow" / "base0_order0" / "train.json").read_text())
    assert record["complete"] and record["settings"]["objective"]["name"] == "goodfellow"
    report = _compare(local_run, out)
    assert report.strip().endswith("ALL IDENTICAL"), report
    for name in ("fig6.csv", "infimnist_share.csv"):
        assert f"report/{name}: identical" in report


def test_export_import_finishes_a_run_stopped_halfway(tiny, local_run, tmp_path):
    first = tmp_path / "first"
    run_experiment(tiny, out=first, progress=False, units="finetune/*", export=tmp_path / "export")
    exported = {p.relative_to(tmp_path / "export").as_posix() for p in (tmp_path / "export").rglob("*") if p.is_file()}
    assert "train/base0/final.caffemodel" in exported and "units/finetune/HC-D-1-1.05/base1_order0.json" in exported
    assert not any(".lmdb" in p for p in exported)  # regenerable LMDBs stay behind
    second = run_experiment(tiny, out=tmp_path / "second", progress=False, import_from=tmp_path / "export")
    manifest = json.loads((second / "units" / "train" / "base0.json").read_text())
    assert manifest["pid"] != os.getpid() or manifest == json.loads(
        (first / "units" / "train" / "base0.json").read_text())  # imported, not retrained
    assert not (second / "train" / "base0" / "snapshot_iter_100.solverstate").exists()
    report = _compare(local_run, second)
    assert "report/table1.csv: identical" in report and "evaluate/testset.lmdb: identical" in report, report


def test_units_and_max_hours_slice_the_graph(tiny, tmp_path):
    out = tmp_path / "slice"
    run_experiment(tiny, out=out, progress=False, units="train/base1")
    assert read_manifest(out, "train/base1") and read_manifest(out, "data")
    assert read_manifest(out, "train/base0") is None
    with pytest.raises(ValueError, match="matches no unit"):
        run_experiment(tiny, out=out, progress=False, units="nothing/*")


def test_generate_shards_on_processes_equal_one_run(lenet_weights, mnist_lmdbs, tmp_path, capsys):
    from hotcold.caffe.lmdb_io import lmdb_digest
    from hotcold.cli import main

    common = ["generate", "--weights", str(lenet_weights), "--images", str(mnist_lmdbs["test"]), "--limit", "90",
              "--chunk-size", "15", "--methods", "FGS", "HC-S-1", "--scales", "1", "1.1", "--quiet"]
    assert main(common + ["--out", str(tmp_path / "one")]) == 0
    assert main(common + ["--out", str(tmp_path / "sharded"), "--shards", "4", "--executor", "processes",
                          "--workers", "2"]) == 0
    assert "4 shards on the processes executor" in capsys.readouterr().out
    assert (tmp_path / "one" / "metadata.csv").read_bytes() == (tmp_path / "sharded" / "metadata.csv").read_bytes()
    assert lmdb_digest(tmp_path / "one" / "images.lmdb") == lmdb_digest(tmp_path / "sharded" / "images.lmdb")
    # Run again: every unit is done, nothing is recomputed.
    assert main(common + ["--out", str(tmp_path / "sharded"), "--shards", "4"]) == 0


# ---------------------------------------------------------------- resume semantics of units

def counted_unit(run: Path, inputs: dict, *, name: str, value: int) -> dict:
    """Writes ``value`` (plus its inputs' values) to a file of a fixed name: the result dict never changes."""
    total = value + sum(int((run / v["path"]).read_text()) for v in inputs.values())
    (run / f"{name}.txt").write_text(str(total))
    return {"path": f"{name}.txt"}


def _chain(value: int) -> list[Unit]:
    return [Unit("up", counted_unit, {"name": "up", "value": value}, owns=("up.txt",)),
            Unit("down", counted_unit, {"name": "down", "value": 0}, needs=("up",))]


def test_a_recomputed_input_recomputes_its_dependents(tmp_path):
    """The dependents see the content of their inputs, not their (unchanged) paths."""
    from hotcold.pipeline.runner import plan

    run_units(_chain(1), tmp_path, "v", ExecutionSettings(), progress=False)
    assert (tmp_path / "down.txt").read_text() == "1"
    with pytest.raises(Exception, match=r"unit 'up' .*config.value: 1 there, 2 now"):
        plan(_chain(2), tmp_path, "v", overwrite=False)
    done, todo = plan(_chain(2), tmp_path, "v", overwrite=True)
    run_units(todo, tmp_path, "v", ExecutionSettings(), overwrite=True, progress=False, done=done)
    assert (tmp_path / "down.txt").read_text() == "2"


def test_a_unit_started_with_another_config_is_not_resumed(tmp_path):
    from hotcold.pipeline.runner import plan
    from hotcold.pipeline.units import started_path

    started_path(tmp_path, "up").parent.mkdir(parents=True)
    started_path(tmp_path, "up").write_text(json.dumps({"config": {"name": "up", "value": 7}, "inputs": {},
                                                        "code_version": "v"}))
    (tmp_path / "up.txt").write_text("partial work of value 7")
    with pytest.raises(Exception, match=r"unit 'up' .*started with another config .*value: 7 there, 1 now"):
        plan(_chain(1), tmp_path, "v", overwrite=False)
    done, todo = plan(_chain(1), tmp_path, "v", overwrite=True)
    run_units(todo, tmp_path, "v", ExecutionSettings(), overwrite=True, progress=False, done=done)
    assert (tmp_path / "up.txt").read_text() == "1"


def test_command_line_executor_overrides_the_yaml(tmp_path):
    from hotcold.pipeline.config import execution_settings, load_experiment

    path = tmp_path / "x.yaml"
    path.write_text("name: x\nexecution: {executor: dask, scheduler: 'tcp://10.0.0.1:8786'}\n")
    exp = load_experiment(path)
    assert execution_settings(exp).scheduler == "tcp://10.0.0.1:8786"
    assert execution_settings(exp, executor="local", scheduler=None).executor == "local"
    assert execution_settings(exp, executor="processes", workers=3, scheduler=None).workers == 3
