"""The MNIST experiment of Sec. 5.2 (Table 1, Figs. 2, 4, 5) in resumable stages.

1. ``data``: the MNIST IDX files, MD5-verified, as Caffe LMDBs.
2. ``train``: N base nets, different seeds (random init and data order).
3. ``generate``: adversarials / hard positives of the training images each base
   net classifies correctly, for the methods the training sets need.
4. ``finetune``: each base net fine-tuned on each training set, per ordering.
5. ``evaluate``: MNIST test error of every net; error on a held-out adversarial
   test set made from the MNIST *test* images on all base nets, with an equal
   number of images per type (the paper: 14 types x 5K).
6. ``report``: Table 1 (Markdown + CSV) and Fig. 2 / 4 / 5 style figures.

Each stage writes its outputs and a manifest under the run directory
(:mod:`hotcold.pipeline.stages`); a re-run skips finished stages and resumes
the others (training from snapshots, generation from completed chunks).
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from hotcold.caffe.lmdb_io import shuffled_copy, write_shuffled_mix
from hotcold.caffe.solver import SolverSettings
from hotcold.caffe.train import train
from hotcold.caffe.zoo import load_model
from hotcold.core.methods import parse_methods, with_scales
from hotcold.core.search import SearchSettings
from hotcold.data.mnist import MnistData, find_mnist_source, load_mnist, prepare_mnist
from hotcold.data.records import read_records
from hotcold.pipeline.config import Experiment
from hotcold.pipeline.evaluation import adversarial_test_set, error_rate, examples, table_rows
from hotcold.pipeline.generation import generate_to_lmdb
from hotcold.pipeline.stages import Stage, log
from hotcold.report import write_report

BASE_ROW = "basic LeNet"
"""Table 1's row of the base nets, before any fine-tuning."""
KEEP_SNAPSHOTS = 2
"""Snapshots kept per training run: enough to resume, few enough for disk."""


class Table1Run:
    """One run of the Table 1 experiment in ``run_dir``; :meth:`run` does or resumes every stage."""

    def __init__(self, exp: Experiment, run_dir: Path, version: str, *, progress: bool = True,
                 overwrite: bool = False) -> None:
        self.exp = exp
        self.overwrite = overwrite
        self.run_dir = run_dir
        self.version = version
        self.progress = progress
        self.model = load_model(exp.model)
        self.cfg = dataclasses.asdict(exp)
        self.search = SearchSettings(max_eps=exp.generate.max_eps)

    def _stage(self, name: str, config: dict) -> Stage:
        return Stage(self.run_dir, name, config, self.version, overwrite=self.overwrite)

    def _classifier(self, weights: str):
        return self.model.classifier(weights, device=self.exp.device)

    def _solver(self, seed: int, max_iter: int, **schedule) -> SolverSettings:
        return SolverSettings(seed=seed, max_iter=max_iter, snapshot_every=self.exp.train.snapshot_every,
                              keep_snapshots=KEEP_SNAPSHOTS, **schedule)

    def run(self) -> Path:
        """Run (or resume) every stage; returns the report folder."""
        t0 = time.time()
        data, mnist = self.data()
        base_nets = self.train_base(data)
        generated = self.generate(base_nets, mnist)
        tuned = self.finetune(data, base_nets, generated)
        evaluation = self.evaluate(base_nets, tuned, mnist)
        report = self.report(evaluation, mnist)
        log(f"done in {time.time() - t0:.0f} s; report: {report / 'report.md'}")
        return report

    def data(self) -> tuple[dict, MnistData]:
        """Stage 1: MNIST, verified, as LMDBs."""
        source = str(find_mnist_source(self.exp.data.source))
        stage = self._stage("data", {"data": self.cfg["data"], "source": source})
        if not stage.done:
            log("data: verifying MNIST and writing LMDBs")
            stage.finish({"source": source}, prepare_mnist(stage.dir, source=source))
        return stage.outputs(), load_mnist(source)

    def train_base(self, data: dict) -> dict[str, str]:
        """Stage 2: the base nets, net i with seed + i and its own data order (Sec. 5.2)."""
        exp = self.exp
        stage = self._stage("train", {"train": self.cfg["train"], "seed": exp.seed, "model": exp.model,
                                      "data": data})
        if not stage.done:
            nets = {}
            for i in range(exp.train.nets):
                log(f"train: base{i} ({exp.train.iterations} iterations, seed {exp.seed + i})")
                order = shuffled_copy(data["train_lmdb"], stage.dir / f"order_base{i}.lmdb", seed=exp.seed + i)
                result = train(self.model, stage.dir / f"base{i}", self._solver(exp.seed + i, exp.train.iterations),
                               train_lmdb=order, test_lmdb=data["test_lmdb"], progress=self.progress,
                               device=exp.device)
                nets[f"base{i}"] = str(result.weights)
            stage.finish(data, {"nets": nets})
        return stage.outputs()["nets"]

    def generate(self, base_nets: dict[str, str], mnist: MnistData) -> dict[str, dict]:
        """Stage 3: the training sets' images from the MNIST training images, on each base net."""
        exp = self.exp
        methods = sorted({m.name for ts in exp.finetune.training_sets for m in
                          with_scales(parse_methods(ts.methods, num_classes=self.model.num_classes),
                                      exp.generate.scales)})
        stage = self._stage("generate", {"generate": self.cfg["generate"], "methods": methods, "nets": base_nets})
        if not stage.done:
            generated = {}
            n = exp.generate.source_images
            for net, weights in base_nets.items():
                if not methods:
                    break
                log(f"generate: {len(methods)} methods on {n} training images, {net}")
                summary = generate_to_lmdb(self._classifier(weights), mnist.train_images[:n],
                                           mnist.train_labels[:n], methods, stage.dir / net, net_name=net,
                                           tau=exp.generate.tau, settings=self.search,
                                           chunk_size=exp.generate.chunk_size, progress=self.progress)
                generated[net] = {"lmdb": str(summary.lmdb), "metadata": str(summary.metadata),
                                  "images": summary.images, "forward_calls": summary.forward_passes}
            stage.finish({"nets": base_nets}, {"generated": generated})
        return stage.outputs()["generated"]

    def finetune(self, data: dict, base_nets: dict[str, str], generated: dict[str, dict]) -> dict[str, dict]:
        """Stage 4: every training set x base net x ordering, fine-tuned from the base net."""
        exp = self.exp
        stage = self._stage("finetune", {"finetune": self.cfg["finetune"], "generate": self.cfg["generate"],
                                         "generated": generated, "data": data})
        if stage.done:
            return stage.outputs()["nets"]
        tuned = {}
        schedule = {"lr_schedule": exp.finetune.lr_schedule,
                    "base_iter": exp.train.iterations if exp.finetune.lr_schedule == "continue" else None}
        for ts in exp.finetune.training_sets:
            wanted = [m.name for m in with_scales(parse_methods(ts.methods), exp.generate.scales)]
            for i, (net, weights) in enumerate(base_nets.items()):
                records = read_records(generated[net]["metadata"])
                keys = sorted(records.key[np.isin(records.method, wanted)].tolist())
                if not keys:
                    log(f"finetune: no generated images of {ts.name} on {net}; row skipped for this net")
                    continue
                for o in range(exp.finetune.orderings):
                    tag = f"{ts.name}/{net}_order{o}"
                    seed = exp.seed + 1000 * (o + 1) + i
                    mix = stage.dir / ts.name / f"{net}_order{o}.lmdb"
                    if not (mix / "data.mdb").is_file():
                        sources = [generated[net]["lmdb"]] + ([data["train_lmdb"]] if exp.finetune.mix_originals
                                                              else [])
                        write_shuffled_mix(mix, sources, seed=seed, select=[keys] + [None] * (len(sources) - 1))
                    log(f"finetune: {tag} ({len(keys)} generated images, {exp.finetune.iterations} iterations)")
                    result = train(self.model, stage.dir / ts.name / f"{net}_order{o}",
                                   self._solver(seed, exp.finetune.iterations, **schedule), train_lmdb=mix,
                                   test_lmdb=data["test_lmdb"], init_weights=weights, progress=self.progress,
                                   device=exp.device)
                    tuned[tag] = {"weights": str(result.weights), "set": ts.name, "base": net,
                                  "train_images": len(keys)}
        stage.finish({"nets": base_nets, "generated": generated}, {"nets": tuned})
        return tuned

    def evaluate(self, base_nets: dict[str, str], tuned: dict[str, dict], mnist: MnistData) -> dict:
        """Stage 5: MNIST test error and the held-out adversarial test error of every net."""
        exp = self.exp
        types = self.eval_types()
        stage = self._stage("evaluate", {"evaluate": self.cfg["evaluate"], "max_eps": exp.generate.max_eps,
                                         "nets": base_nets, "tuned": tuned})
        if stage.done:
            return stage.outputs()
        n = exp.evaluate.source_images
        summaries = []
        for net, weights in base_nets.items():
            log(f"evaluate: adversarial test images ({len(types)} types, {n} MNIST test images) on {net}")
            summaries.append(generate_to_lmdb(self._classifier(weights), mnist.test_images[:n],
                                              mnist.test_labels[:n], types, stage.dir / f"advtest_{net}",
                                              net_name=net, tau=exp.evaluate.tau, settings=self.search,
                                              chunk_size=exp.generate.chunk_size, progress=self.progress))
        test_set = adversarial_test_set(summaries, types, exp.evaluate.per_type, exp.seed)
        counts = {t: int((test_set["method"] == t).sum()) for t in types}
        log(f"evaluate: adversarial test set of {len(test_set['labels'])} images, per type {counts}")
        results = {}
        everything = {net: {"weights": w, "set": BASE_ROW, "base": net, "train_images": 0}
                      for net, w in base_nets.items()}
        everything.update(tuned)
        for tag, info in everything.items():
            clf = self._classifier(info["weights"])
            results[tag] = {**info, "mnist_error": error_rate(clf, mnist.test_images, mnist.test_labels),
                            "adv_error": (error_rate(clf, test_set["images"], test_set["labels"])
                                          if len(test_set["labels"]) else float("nan"))}
        stage.finish({"nets": base_nets, "tuned": tuned},
                     {"results": results, "adversarial_test_counts": counts,
                      "metadata": [str(s.metadata) for s in summaries]})
        return stage.outputs()

    def report(self, evaluation: dict, mnist: MnistData) -> Path:
        """Stage 6: Table 1 and the figures; always rewritten (it is cheap)."""
        stage = self._stage("report", {"report": self.cfg["report"], "evaluation": evaluation})
        grid = examples(evaluation["metadata"][0], mnist.test_images, self.exp.report.example_source,
                        self.eval_types())
        paths = write_report(stage.dir, table_rows(evaluation["results"]), evaluation["metadata"], examples=grid)
        stage.finish({"evaluation": str(self.run_dir / "evaluate" / "manifest.json")},
                     {"files": [str(p) for p in paths]})
        print((stage.dir / "table1.md").read_text())
        return stage.dir

    def eval_types(self) -> list[str]:
        """The adversarial test set's types, one name each (sets expanded)."""
        return [m.name for m in parse_methods(self.exp.evaluate.types, num_classes=self.model.num_classes)]
