"""The ImageNet experiments as graphs of work units: Fig. 3 (Sec. 4) and the hard-positive fine-tune (Sec. 5.3).

``kind: imagenet_fig3``

| unit | does | writes |
|---|---|---|
| ``images`` | the photos, shorter side resized, center-cropped square | ``images/`` |
| ``generate/<net>`` | FGS / FGV / HC-D-k adversarials of every photo, PASS and metrics (kept below tau too) | ``generate/<net>/`` |
| ``report`` | one Fig. 3 per photo, ``fig3.md`` / ``fig3.csv`` | ``report/`` |

``kind: imagenet_hp``

| unit | does | writes |
|---|---|---|
| ``data`` | ImageNet folders as Datum LMDBs (BGR, 256 x 256; :mod:`hotcold.data.imagenet`) | ``data/`` |
| ``select`` | the first ``per_class`` correctly classified training images per class, center crops | ``select/`` |
| ``generate/shard<k>``, ``generate`` | hot/cold hard positives with PASS >= tau, merged | ``generate/`` |
| ``mix`` | training center crops + the first ``target`` hard positives, shuffled | ``finetune/train.lmdb`` |
| ``finetune`` | the base net fine-tuned (batch 80, center crops) | ``finetune/net/`` |
| ``evaluate/base``, ``evaluate/finetuned`` | top-1 / top-5 error on validation center crops | (manifests) |
| ``report`` | ``finetune.md`` / ``finetune.csv`` beside the paper's numbers | ``report/`` |

Channel order: every LMDB holds Caffe's BGR records, as ``convert_imageset``
writes them; arrays in memory are RGB, the order hotcold's classifiers take
(``channel_swap`` in the model YAML turns it into the net's BGR).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
from google.protobuf import text_format

from hotcold._guard import file_digest
from hotcold._io import atomic_write
from hotcold.caffe.lmdb_io import DatumLmdbAppender, iter_datum_lmdb, write_shuffled_mix
from hotcold.caffe.prototxt import parse_text
from hotcold.caffe.runtime import caffe_pb2
from hotcold.caffe.solver import SolverSettings
from hotcold.caffe.train import train
from hotcold.caffe.zoo import load_model
from hotcold.core.generator import generate_batches
from hotcold.core.methods import parse_methods
from hotcold.core.records import GeneratedBatch
from hotcold.core.search import SearchSettings
from hotcold.data.image_sets import read_image
from hotcold.data.imagenet import center_crop, convert_imagenet, read_center_crops, read_label_file, resize_image
from hotcold.data.records import read_records, records_csv
from hotcold.pipeline.generation import caffe_channel_order, generate_to_lmdb, merge_unit
from hotcold.pipeline.imagenet_config import Fig3Experiment, HardPositiveExperiment, fig3_images, imagenet_folders
from hotcold.pipeline.table1 import classifier_for
from hotcold.pipeline.units import Unit
from hotcold.report.imagenet import Fig3Cell, fig3_table, hp_table, plot_fig3

_PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff"}


def model_weights(model: str, given: str | None) -> str:
    """The ``.caffemodel`` of a net: the config's path, else the one ``hotcold models fetch`` installed."""
    if given is not None:
        return str(Path(given).absolute())
    return str(load_model(model).installed_weights())


# ------------------------------------------------------------------ Fig. 3

def build_fig3_units(exp: Fig3Experiment, *, progress: bool) -> list[Unit]:
    """The Fig. 3 graph. The photo folder and the weights' paths are local to this machine; the units
    record their contents' digests."""
    photos = fig3_images(exp)
    files = photo_files(photos, exp.limit)
    units = [Unit("images", images_unit, {
        "resize": exp.resize, "limit": exp.limit, "photos_digest": _files_digest(Path(photos), files, content=True),
        "labels_digest": None if exp.labels is None else file_digest(exp.labels)},
        local={"folder": photos, "labels_file": exp.labels})]
    for net in exp.nets:
        weights = model_weights(net.model, net.weights)
        units.append(Unit(f"generate/{net.name}", fig3_generate_unit, {
            "net": net.name, "model": net.model, "weights_digest": file_digest(weights), "methods": exp.methods,
            "tau": exp.tau, "max_eps": exp.max_eps}, needs=("images",), owns=(f"generate/{net.name}",),
            local={"weights": weights, "device": exp.device, "progress": progress}))
    units.append(Unit("report", fig3_report_unit, {
        "methods": exp.methods, "tau": exp.tau, "nets": [n.name for n in exp.nets],
        "class_names_digest": None if exp.class_names is None else file_digest(exp.class_names)},
                      needs=("images", *[f"generate/{n.name}" for n in exp.nets]),
                      local={"class_names": exp.class_names}))
    return units


def photo_files(folder: str | Path, limit: int | None) -> list[Path]:
    """The photos of a folder, searched recursively, sorted by path; the first ``limit``."""
    root = Path(folder)
    files = sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in _PHOTO_SUFFIXES)
    if not files:
        raise ValueError(f"{root} holds no photos ({', '.join(sorted(_PHOTO_SUFFIXES))})")
    return files[:limit]


def _files_digest(root: Path, files: list[Path], *, content: bool) -> str:
    """What identifies a set of input files: names and contents, or (for ImageNet's 1.3M) names and sizes (no
    mtimes: a copy of the data set without preserved times must still resume the run)."""
    from hotcold.pipeline.units import digest

    return digest([(str(f.relative_to(root)), file_digest(f) if content else f.stat().st_size) for f in files])


def images_unit(run: Path, inputs: dict, *, resize: int, limit: int | None, photos_digest: str,
                labels_digest: str | None, folder: str, labels_file: str | None) -> dict:
    """The photos (sorted by path), shorter side ``resize``, center-cropped square: ``images/photos.npy``."""
    root = Path(folder)
    files = photo_files(root, limit)
    names = [str(f.relative_to(root)) for f in files]
    photos = np.stack([resize_image(read_image(f, channels=3), resize, shorter_side=True) for f in files])
    labels = None
    if labels_file is not None:
        given = dict(read_label_file(labels_file, num_classes=1 << 30))
        missing = [n for n in names if n not in given and Path(n).name not in given]
        if missing:
            raise ValueError(f"{labels_file} gives no label for {missing[:3]}; list every photo, or use labels: null")
        labels = [given.get(n, given.get(Path(n).name)) for n in names]
    out = run / "images"
    out.mkdir(parents=True, exist_ok=True)
    _save_npy(out / "photos.npy", photos)
    atomic_write(out / "names.json", json.dumps({"names": names, "labels": labels}, indent=1))
    return {"photos_path": "images/photos.npy", "names_path": "images/names.json", "count": len(files)}


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
    tmp.replace(path)


def fig3_generate_unit(run: Path, inputs: dict, *, net: str, model: str, weights_digest: str, methods: list[str],
                       tau: float, max_eps: float, weights: str, device: str = "cpu",
                       progress: bool = False) -> dict:
    """Every method on every photo for one net, below-tau results kept (Fig. 3 shows failed ones too)."""
    if file_digest(weights) != weights_digest:
        raise ValueError(f"{weights} changed since the run was planned; start the run again")
    clf = classifier_for(model, Path(weights), device)
    photos = np.load(run / inputs["images"]["photos_path"])
    info = json.loads((run / inputs["images"]["names_path"]).read_text())
    height, width = clf.image_shape[:2]
    if height != width:
        raise ValueError(f"{model}'s input is {height} x {width}; Fig. 3 center-crops square photos")
    crops = center_crop(photos, height)
    labels = np.asarray(info["labels"] if info["labels"] is not None else clf.classify(crops), np.int64)
    if len(labels) and labels.max() >= clf.num_classes:
        raise ValueError(f"labels: {int(labels.max())} is not a class of {net} (0..{clf.num_classes - 1}); the "
                         "labels file must use the net's 0-based class numbers (Caffe's synset order)")
    batches = list(generate_batches(clf, crops, labels, methods, tau, settings=SearchSettings.capped(max_eps),
                                    keep_rejected=True, net_name=net, progress=progress, chunk_size=8))
    found = GeneratedBatch.concat(batches) if batches else GeneratedBatch.empty(clf.image_shape)
    out = run / "generate" / net
    out.mkdir(parents=True, exist_ok=True)
    _save_npy(out / "images.npy", found.images)
    atomic_write(out / "metadata.csv", records_csv(found))
    atomic_write(out / "labels.json", json.dumps(labels.tolist()))
    return {"images_path": f"generate/{net}/images.npy", "metadata": f"generate/{net}/metadata.csv",
            "labels_path": f"generate/{net}/labels.json", "found": len(found)}


def fig3_report_unit(run: Path, inputs: dict, *, methods: list[str], tau: float, nets: list[str],
                     class_names_digest: str | None, class_names: str | None) -> dict:
    """One Fig. 3 per photo and the table of every generated image."""
    names = _class_names(class_names)
    photos = np.load(run / inputs["images"]["photos_path"])
    photo_names = json.loads((run / inputs["images"]["names_path"]).read_text())["names"]
    out = run / "report"
    paths, rows = [], []
    per_net = {}
    for net in nets:
        result = inputs[f"generate/{net}"]
        records = read_records(run / result["metadata"])
        images = np.load(run / result["images_path"])
        per_net[net] = (records, images)
    expanded = [m.name for m in parse_methods(methods)]
    for p, photo_name in enumerate(photo_names):
        originals, cells = {}, []
        for net in nets:
            records, images = per_net[net]
            size = images.shape[1] if len(images) else photos.shape[1]
            originals[net] = center_crop(photos[p:p + 1], min(size, photos.shape[1]))[0]
            for i in np.flatnonzero(records.source_index == p):
                row = {k: records[k][i].item() if hasattr(records[k][i], "item") else records[k][i]
                       for k in records.keys() if k != "images"}
                rows.append({"photo": photo_name, **row})
                cells.append(Fig3Cell(net, str(records.method[i]), images[i], float(records.pass_score[i]),
                                      float(records.l2_per_pixel[i]), float(records.linf[i]),
                                      _name(names, int(records.predicted[i])), bool(records.accepted[i])))
        stem = Path(photo_name).with_suffix("").as_posix().replace("/", "_")
        paths.append(plot_fig3(originals, cells, expanded, out / f"fig3_{p:03d}_{stem}.png",
                               title=photo_name, tau=tau))
    paths += fig3_table(rows, out, tau=tau)
    return {"files": [str(Path(q).relative_to(run)) for q in paths]}


def _class_names(path: str | None) -> list[str] | None:
    if path is None:
        return None
    return [" ".join(line.split()[1:]).split(",")[0] or line.split()[0]
            for line in Path(path).read_text().splitlines() if line.strip()]


def _name(names: list[str] | None, label: int) -> str:
    return f"{label}" if names is None or label >= len(names) else f"{names[label]} ({label})"


# ------------------------------------------------------------------ Sec. 5.3

def build_hp_units(exp: HardPositiveExperiment, *, progress: bool) -> list[Unit]:
    """The Sec. 5.3 graph: data, select, generate shards + merge, mix, finetune, evaluate, report."""
    folders = imagenet_folders(exp.data)
    model = load_model(exp.model)
    weights = model_weights(exp.model, exp.weights)
    local = {"device": exp.device, "progress": progress}
    base = {"model": exp.model, "weights_digest": file_digest(weights)}
    g = exp.generate
    listing = {key: _files_digest(Path(folders[key]), sorted(p for p in Path(folders[key]).rglob("*") if p.is_file()),
                                  content=False) for key in ("train", "val")}
    listing["val_labels"] = None if folders["val_labels"] is None else file_digest(folders["val_labels"])
    units = [Unit("data", hp_data_unit, {"size": exp.data.size, "shorter_side": exp.data.shorter_side,
                                         "folders_digest": listing},
                  owns=("data",), local={**folders, "progress": progress}),
             Unit("select", select_unit, {**base, "per_class": exp.select.per_class,
                                          "num_classes": model.num_classes},
                  needs=("data",), owns=("select",), local={**local, "weights": weights})]
    capacity = exp.select.per_class * model.num_classes
    shards = []
    for k, start in enumerate(range(0, capacity, g.shard_images)):
        key = f"generate/shard{k:03d}"
        shards.append(key)
        units.append(Unit(key, hp_generate_unit, {
            **base, "start": start, "stop": min(start + g.shard_images, capacity), "methods": g.methods,
            "tau": g.tau, "max_eps": g.max_eps, "chunk_size": g.chunk_size, "out": f"generate/shards/shard{k:03d}"},
            needs=("select",), owns=(f"generate/shards/shard{k:03d}",), local={**local, "weights": weights}))
    units.append(Unit("generate", merge_unit, {"out": "generate"}, needs=tuple(shards)))
    f = exp.finetune
    units.append(Unit("mix", mix_unit, {"target": g.target, "mix_originals": f.mix_originals, "seed": f.seed,
                                        "crop": model.input_shape[1]},
                      needs=("data", "generate"), owns=("finetune/train.lmdb", "finetune/crops.lmdb")))
    units.append(Unit("finetune", hp_finetune_unit, {
        **base, "iterations": f.iterations, "batch_size": f.batch_size, "mirror": f.mirror, "seed": f.seed,
        "snapshot_every": f.snapshot_every}, needs=("data", "mix"), owns=("finetune/net",),
        local={**local, "weights": weights}))
    evaluate = {"model": exp.model, "val_images": exp.evaluate.val_images}
    units.append(Unit("evaluate/base", topk_unit, {**evaluate, "weights_digest": base["weights_digest"]},
                      needs=("data",), local={**local, "weights": weights}))
    units.append(Unit("evaluate/finetuned", topk_unit, evaluate, needs=("data", "finetune"), local=local))
    units.append(Unit("report", hp_report_unit, {}, needs=("mix", "evaluate/base", "evaluate/finetuned")))
    return units


def hp_data_unit(run: Path, inputs: dict, *, size: int, shorter_side: bool, folders_digest: dict, train: str,
                 val: str, val_labels: str | None, progress: bool = False) -> dict:
    """``hotcold data imagenet`` into ``data/``: ``train_lmdb`` (shuffled), ``val_lmdb``, ``synsets.txt``."""
    done = convert_imagenet(run / "data", train=train, val=val, val_labels=val_labels, size=size,
                            shorter_side=shorter_side, threads=os.cpu_count() or 1, progress=progress)
    return {"train_lmdb": "data/train_lmdb", "val_lmdb": "data/val_lmdb", "synsets_path": "data/synsets.txt",
            "skipped": {split: len(r.skipped) for split, r in done.items()}}


def select_unit(run: Path, inputs: dict, *, model: str, weights_digest: str, per_class: int, num_classes: int,
                weights: str, device: str = "cpu", progress: bool = False) -> dict:
    """The first ``per_class`` training images per class that the base net classifies correctly (Sec. 5.3:
    "15 correctly classified images per class"), as center crops in ``select/originals.lmdb``."""
    clf = classifier_for(model, Path(weights), device)
    crop = clf.image_shape[0]
    taken = np.zeros(num_classes, np.int64)
    target = run / "select" / "originals.lmdb"
    if target.exists():  # cut short: select again from the start (it is deterministic)
        shutil.rmtree(target)
    scanned = 0
    with DatumLmdbAppender(target) as out:
        for images, labels, keys in read_center_crops(run / inputs["data"]["train_lmdb"], crop, batch_size=256):
            scanned += len(keys)
            correct = clf.classify(images) == labels
            keep = []
            for j in np.flatnonzero(correct):
                if taken[labels[j]] < per_class:
                    taken[labels[j]] += 1
                    keep.append(j)
            if keep:
                out.append(caffe_channel_order(images[keep]), labels[keep], [keys[j] for j in keep])
            if (taken >= per_class).all():
                break
        selected = len(out)
    short = int((taken < per_class).sum())
    return {"originals_lmdb": "select/originals.lmdb", "selected": selected, "scanned": scanned,
            "classes_short": short}


def hp_generate_unit(run: Path, inputs: dict, *, model: str, weights_digest: str, start: int, stop: int,
                     methods: list[str], tau: float, max_eps: float, chunk_size: int, out: str, weights: str,
                     device: str = "cpu", progress: bool = False) -> dict:
    """Hard positives of the selected originals ``start:stop`` (fewer when fewer were selected)."""
    clf = classifier_for(model, Path(weights), device)
    images, labels, seen = [np.empty((0,) + clf.image_shape, np.uint8)], [np.empty(0, np.int64)], 0
    for batch in iter_datum_lmdb(run / inputs["select"]["originals_lmdb"], batch_size=100):
        lo, hi = max(start - seen, 0), min(stop - seen, len(batch.keys))
        if lo < hi:
            images.append(caffe_channel_order(batch.images[lo:hi]))
            labels.append(batch.labels[lo:hi])
        seen += len(batch.keys)
        if seen >= stop:
            break
    images, labels = np.concatenate(images), np.concatenate(labels)
    summary = generate_to_lmdb(clf, images, labels, methods, run / out, net_name="base", tau=tau,
                               settings=SearchSettings.capped(max_eps), chunk_size=chunk_size,
                               source_indices=np.arange(start, start + len(images)), progress=progress,
                               overwrite=True)
    return {"lmdb": f"{out}/images.lmdb", "metadata": f"{out}/metadata.csv", "images": summary.images,
            "forward_calls": summary.forward_passes}


def mix_unit(run: Path, inputs: dict, *, target: int | None, mix_originals: bool, seed: int, crop: int) -> dict:
    """The fine-tuning set: the first ``target`` hard positives (None: all) and, with ``mix_originals``, the
    training set's center crops, shuffled, for Caffe's Data layer. The crops are deleted once mixed (at
    ImageNet scale they are ~190 GB)."""
    folder = run / "finetune"
    records = read_records(run / inputs["generate"]["metadata"])
    keys = records.key[records.accepted].tolist()[:target]
    sources, select = [run / inputs["generate"]["lmdb"]], [keys]
    if mix_originals:
        crops = folder / "crops.lmdb"
        _center_crops(run / inputs["data"]["train_lmdb"], crops, crop)
        sources.append(crops)
        select.append(None)
    total = write_shuffled_mix(folder / "train.lmdb", sources, seed=seed, select=select, overwrite=True)
    if mix_originals:
        shutil.rmtree(crops)
    return {"train_lmdb": "finetune/train.lmdb", "hard_positives": len(keys), "images": total,
            "short_of_target": None if target is None else max(0, target - len(keys))}


def _center_crops(src: Path, dst: Path, crop: int) -> None:
    """Center crops of an LMDB's records into ``dst``, same keys and channel order (resumable by key)."""
    with DatumLmdbAppender(dst) as out:
        for batch in iter_datum_lmdb(src, batch_size=500):
            rows = [j for j, k in enumerate(batch.keys) if k not in out]
            if rows:
                out.append(center_crop(batch.images[rows], crop), batch.labels[rows], [batch.keys[j] for j in rows])


def hp_finetune_unit(run: Path, inputs: dict, *, model: str, weights_digest: str, iterations: int, batch_size: int,
                     mirror: bool, seed: int, snapshot_every: int, weights: str, device: str = "cpu",
                     progress: bool = False) -> dict:
    """The base net fine-tuned on the mix with the model's solver (Sec. 5.3: "original hyperparameters
    distributed with the BVLC-GoogLeNet model", batch 80, center crops)."""
    spec = load_model(model)
    net = parse_text(spec.train_test_prototxt, caffe_pb2().NetParameter())
    for layer in net.layer:
        if layer.type == "Data" and any(rule.phase == caffe_pb2().TRAIN for rule in layer.include):
            layer.data_param.batch_size = batch_size
            layer.transform_param.mirror = mirror
    folder = run / "finetune" / "net"
    folder.mkdir(parents=True, exist_ok=True)
    prototxt = atomic_write(folder / "train_val.template.prototxt", text_format.MessageToString(net))
    spec = dataclasses.replace(spec, train_test_prototxt=prototxt)
    result = train(spec, folder, SolverSettings(seed=seed, max_iter=iterations, snapshot_every=snapshot_every,
                                                keep_snapshots=2),
                   train_lmdb=run / inputs["mix"]["train_lmdb"], test_lmdb=run / inputs["data"]["val_lmdb"],
                   init_weights=weights, device=device, progress=progress)
    return {"weights": str(result.weights.relative_to(run.resolve()))}


def topk_unit(run: Path, inputs: dict, *, model: str, val_images: int | None, weights_digest: str | None = None,
              weights: str | None = None, device: str = "cpu", progress: bool = False) -> dict:
    """Top-1 / top-5 error (%) on the validation set's center crops (Sec. 5.3)."""
    path = Path(weights) if weights is not None else run / inputs["finetune"]["weights"]
    clf = classifier_for(model, path, device)
    top1 = top5 = seen = 0
    for images, labels, _ in read_center_crops(run / inputs["data"]["val_lmdb"], clf.image_shape[0],
                                               limit=val_images, batch_size=250):
        logits = clf.predict(images)
        k = min(5, logits.shape[1])
        best = np.argsort(-logits, axis=1, kind="stable")[:, :k]
        top1 += int((best[:, 0] != labels).sum())
        top5 += int((best != labels[:, None]).all(axis=1).sum())
        seen += len(labels)
    return {"top1_error": 100.0 * top1 / seen, "top5_error": 100.0 * top5 / seen, "images": seen}


def hp_report_unit(run: Path, inputs: dict) -> dict:
    """``report/finetune.md`` and ``.csv``."""
    paths = hp_table({"base": inputs["evaluate/base"], "finetuned": inputs["evaluate/finetuned"],
                      "hard_positives": inputs["mix"]["hard_positives"]}, run / "report")
    return {"files": [str(Path(p).relative_to(run)) for p in paths]}
