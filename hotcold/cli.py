"""The ``hotcold`` command line: doctor, pass, generate, data, models, run."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence


def _cmd_doctor(args: argparse.Namespace) -> int:
    from hotcold.caffe.doctor import main

    return main()


def _cmd_pass(args: argparse.Namespace) -> int:
    from hotcold.core.pass_measure import pass_score
    from hotcold.data.image_sets import read_image

    adversarial, original = read_image(args.adversarial), read_image(args.original)
    if adversarial.shape != original.shape:
        raise ValueError(f"the images differ in size: {args.adversarial} is {adversarial.shape}, {args.original} is "
                         f"{original.shape}; PASS compares an image with a perturbed copy of the same size")
    result = pass_score(adversarial, original)
    if args.json:
        print(json.dumps({"pass": result.score, "converged": result.converged,
                          "homography": result.homography.tolist(), "message": result.message}))
    else:
        note = "" if result.converged else f"  (ECC did not converge: unaligned SSIM; {result.message})"
        print(f"PASS = {result.score:.6f}{note}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from hotcold.caffe.runtime import check_device, require_gpu
    from hotcold.caffe.zoo import load_model
    from hotcold.core.methods import parse_methods
    from hotcold.core.search import SearchSettings
    from hotcold.data.image_sets import load_image_set
    from hotcold.data.imagenet import crop_to_input
    from hotcold.pipeline.generation import generate_to_lmdb

    # A GPU on a CPU-only build, or one this machine lacks, fails before any image is read.
    args.device = check_device(args.device or "cpu")
    if args.device != "cpu" and args.executor in (None, "local", "processes"):
        require_gpu(args.device)
    model = load_model(args.model)
    if args.weights is None:
        args.weights = str(model.installed_weights())
    try:
        parse_methods(args.methods, num_classes=model.num_classes)  # fail fast on a bad name
    except ValueError as exc:
        raise ValueError(f"--methods: {exc}") from None
    images, labels = load_image_set(args.images, labels=args.labels, channels=model.input_shape[0])
    cropped = crop_to_input(images, *model.input_shape[1:])
    if cropped.shape != images.shape:
        print(f"hotcold generate: {args.images}: {images.shape[1]} x {images.shape[2]} images, using their center "
              f"{cropped.shape[1]} x {cropped.shape[2]} crops", file=sys.stderr)
    images = cropped
    if args.limit is not None:
        if args.limit > len(images):
            print(f"hotcold generate: warning: --limit {args.limit} is more than the {len(images)} images of "
                  f"{args.images}; using all {len(images)}", file=sys.stderr)
        images, labels = images[:args.limit], labels[:args.limit]
    if len(images) == 0:
        raise ValueError(f"--images: {args.images} holds no images")
    if labels.min() < 0 or labels.max() >= model.num_classes:
        raise ValueError(f"--images: labels must lie in 0..{model.num_classes - 1} for {model.name}, found "
                         f"{labels.min()}..{labels.max()}")
    if args.shards > 1 or args.executor not in (None, "local"):
        return _generate_sharded(args, model, images, labels)
    classifier = model.classifier(args.weights, deploy_prototxt=args.deploy, device=args.device)
    summary = generate_to_lmdb(classifier, images, labels, args.methods, args.out, net_name=args.net_name,
                               tau=args.tau, scales=args.scales, settings=SearchSettings.capped(args.max_eps),
                               chunk_size=args.chunk_size, progress=not args.quiet, overwrite=args.overwrite,
                               overwrite_hint="pass --overwrite to start over, or choose another --out")
    print(f"{summary.images} images in {summary.lmdb}; metadata {summary.metadata}; "
          f"{summary.seconds:.1f} s, {summary.forward_passes} Caffe forward calls")
    return 0


def _generate_sharded(args: argparse.Namespace, model, images, labels) -> int:
    """``hotcold generate --shards N``: the image set in N units on an executor, then one merge."""
    from pathlib import Path

    from hotcold._guard import DirectoryLock, array_digest, claim, file_digest
    from hotcold.core.methods import parse_methods, with_scales
    from hotcold.pipeline.executor import ExecutionSettings, run_units
    from hotcold.pipeline.generation import image_set_units
    from hotcold.pipeline.runner import plan
    from hotcold.pipeline.stages import code_version

    settings = ExecutionSettings(executor=args.executor or "local", workers=args.workers or 2,
                                 scheduler=args.scheduler)
    methods = [m.name for m in with_scales(parse_methods(args.methods, num_classes=model.num_classes), args.scales)]
    deploy = Path(args.deploy or model.deploy_prototxt).absolute()
    # The shards' config holds absolute paths: a sharded generation runs where its inputs are.
    units = image_set_units(model=args.model, weights=str(Path(args.weights).absolute()), deploy=str(deploy),
                            images=str(Path(args.images).absolute()),
                            labels=None if args.labels is None else str(Path(args.labels).absolute()),
                            count=len(images), shards=args.shards, methods=methods, tau=args.tau,
                            max_eps=args.max_eps, chunk_size=args.chunk_size, net_name=args.net_name,
                            device=args.device, progress=not args.quiet and settings.executor == "local")
    version = code_version()
    identity = {"kind": "hotcold generate --shards", "code_version": version,
                "config": {"methods": methods, "tau": args.tau, "max_eps": args.max_eps, "shards": args.shards,
                           "chunk_size": args.chunk_size, "net_name": args.net_name},
                "inputs": {"images": array_digest(images, labels), "weights": file_digest(args.weights),
                           "deploy": file_digest(deploy)}}
    out = Path(args.out)
    with DirectoryLock(out, f"generate {args.net_name}"):
        claim(out, identity, overwrite=args.overwrite, fix="pass --overwrite to start over, or choose another --out")
        done, todo = plan(units, out, version, overwrite=args.overwrite)
        results = {**done, **run_units(todo, out, version, settings, overwrite=args.overwrite,
                                       progress=not args.quiet, done=done)}
    merged = results["merge"]
    print(f"{merged['images']} images in {out / 'images.lmdb'}; metadata {out / 'metadata.csv'}; "
          f"{len(units) - 1} shards on the {settings.executor} executor, {merged['forward_calls']} forward calls")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from hotcold.data.mnist import prepare_mnist

    paths = prepare_mnist(args.out, source=args.source)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _cmd_data_imagenet(args: argparse.Namespace) -> int:
    from hotcold.data.imagenet import convert_imagenet

    done = convert_imagenet(args.out, train=args.train, val=args.val, val_labels=args.val_labels,
                            synsets=args.synsets, size=args.size, shorter_side=args.shorter_side, seed=args.seed,
                            threads=args.threads, progress=not args.quiet)
    for split, result in done.items():
        note = f"; {len(result.skipped)} files skipped, listed in {result.lmdb}_skipped.tsv" if result.skipped else ""
        print(f"{split}: {result.images} images in {result.lmdb}{note}")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from hotcold.caffe.zoo import load_model

    model = load_model(args.model)
    bars = []

    def progress(done: int, total: int | None) -> None:
        if not bars:  # opened on the first bytes, so that errors before them print alone
            bars.append(tqdm(total=total, initial=done, unit="B", unit_scale=True, desc=model.weights_file,
                             disable=args.quiet, dynamic_ncols=True))
        bars[0].update(done - bars[0].n)

    try:
        result = model.fetch_weights(to=args.to, source=args.source, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    if result.note:
        print(f"hotcold models fetch: note: {result.note}", file=sys.stderr)
    print(f"{model.name}: {result.path} ({result.how}, sha1 {result.sha1})")
    if args.to is not None:
        print(f"hotcold finds weights by itself only at {model.weights_path()} ($HOTCOLD_MODELS_DIR/{model.name}/"
              f"{model.weights_file} when set); give this file as `hotcold generate --weights {result.path}` or "
              f"`weights: {result.path}` in an experiment YAML")
    return 0


def _cmd_models_build(args: argparse.Namespace) -> int:
    from hotcold.caffe.netgen import build
    from hotcold.caffe.zoo import package_data

    out = args.out or package_data("prototxt")
    if args.check:
        stale = build.stale(out)
        if stale:
            print(f"hotcold models build: {', '.join(stale)} in {out} differ from the generators; run "
                  "`hotcold models build` and commit the result", file=sys.stderr)
            return 1
        print(f"{len(build.FILES)} prototxts in {out} match the generators")
        return 0
    for path in build.write(out):
        print(path)
    return 0


def _cmd_infimnist(args: argparse.Namespace) -> int:
    from hotcold.data.infimnist import write_infimnist_lmdb
    from hotcold.data.mnist import find_mnist_source, load_mnist

    summary = write_infimnist_lmdb(args.out, args.count, load_mnist(find_mnist_source(args.source)),
                                   first=args.first, data_dir=args.infimnist_data, overwrite=args.overwrite)
    kind = "InfiMNIST" if summary.original else "InfiMNIST-style (hotcold's fields and tangent vectors)"
    timing = (f"{summary.seconds:.1f} s, {summary.samples_per_second:,.0f} samples/s" if summary.seconds
              else "already complete")
    print(f"{summary.count:,} {kind} samples {summary.first}..{summary.first + summary.count - 1} in "
          f"{summary.lmdb}; {timing}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hotcold.pipeline.runner import run_experiment

    run_experiment(args.experiment, out=args.out, progress=not args.quiet, overwrite=args.overwrite,
                   executor=args.executor, workers=args.workers, scheduler=args.scheduler, units=args.units,
                   max_hours=args.max_hours, export=args.export, import_from=args.import_from,
                   device=args.device)
    return 0


def _number(*, least: float | None = None, most: float | None = None, above: float | None = None):
    """An argparse type: a finite float within the given bounds."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if least is not None and value < least or most is not None and value > most \
                or above is not None and value <= above:
            bounds = " and ".join(b for b in (f">= {least:g}" if least is not None else "",
                                              f"<= {most:g}" if most is not None else "",
                                              f"> {above:g}" if above is not None else "") if b)
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text}")
        return value
    return parse


def _count(text: str) -> int:
    """An argparse type: an integer >= 1 (no silent rounding of 1.7)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _plain_name(text: str) -> str:
    from hotcold._guard import check_plain_name

    try:
        return check_plain_name(text, "the name")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device(text: str) -> str:
    name, _, index = text.partition(":")
    if text != "cpu" and (name != "gpu" or (index and not index.isdigit())):
        raise argparse.ArgumentTypeError(f"must be cpu, gpu or gpu:N, got {text!r}")
    return text


def _gpu(text: str) -> str:
    """An argparse type: ``--gpu N`` is ``--device gpu:N``."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a GPU number such as 0, got {text!r}")
    return f"gpu:{int(text)}"


def _device_options(p: argparse.ArgumentParser, *, default_help: str) -> None:
    # No default here: argparse would not see "--gpu 0 --device cpu" as a conflict (the value is the default).
    group = p.add_mutually_exclusive_group()
    group.add_argument("--device", type=_device,
                       help=f"cpu, gpu or gpu:N (default: {default_help}); a GPU needs the CUDA build "
                            "(scripts/setup.sh --cuda)")
    group.add_argument("--gpu", dest="device", type=_gpu, metavar="N", help="run Caffe on GPU N: --device gpu:N")


def _executor_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--executor", choices=("local", "processes", "dask"),
                   help="where units run: in process (default), on local worker processes, or on a Dask scheduler")
    p.add_argument("--workers", type=_count, help="worker processes of --executor processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler of --executor dask, e.g. tcp://host:8786")


def build_parser() -> argparse.ArgumentParser:
    from hotcold._version import __version__

    parser = argparse.ArgumentParser(prog="hotcold", description=(
        "PASS, hot/cold adversarial directions and hard positives on Caffe "
        "(Rozsa, Rudd, Boult, CVPRW 2016)."))
    parser.add_argument("--version", action="version", version=f"hotcold {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show Caffe's glog output")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="check the Caffe build, the patch and the Python packages")
    p.set_defaults(func=_cmd_doctor)

    p = sub.add_parser("pass", help="PASS(adversarial, original) of two image files (Eq. 4)")
    p.add_argument("adversarial")
    p.add_argument("original")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_pass)

    p = sub.add_parser("generate", help="adversarials / hard positives of an image set into an LMDB")
    p.add_argument("--model", default="lenet", help="a shipped model name (lenet) or a model YAML path")
    p.add_argument("--weights", help=".caffemodel (default: the model's weights installed by hotcold models fetch)")
    p.add_argument("--deploy", help="deploy prototxt (default: the model's)")
    p.add_argument("--images", required=True, help="IDX image file, Datum LMDB, or folder of label sub-folders")
    p.add_argument("--labels", help="IDX label file (with an IDX image file)")
    p.add_argument("--methods", nargs="+", default=["FGS", "FGV", "HC-D-1..9", "HC-S-1"],
                   help="e.g. FGS FGV HC-D-1..9 HC-S-1 HC-D-1x1.05")
    p.add_argument("--scales", nargs="+", type=_number(least=1.0), default=[1.0],
                   help="hard-positive scales >= 1; 1 = the minimal adversarial (paper: 1.05, 1.10)")
    p.add_argument("--tau", type=_number(least=0.0, most=1.0), help="PASS threshold of Eq. 5, in [0, 1]")
    p.add_argument("--max-eps", type=_number(above=0.0), default=255.0, help="line-search cap (pixel levels)")
    p.add_argument("--limit", type=_count, help="use the first N images")
    p.add_argument("--chunk-size", type=_count, default=500, help="originals per resumable chunk")
    p.add_argument("--net-name", type=_plain_name, default="net", help="name of the net in keys and metadata")
    _device_options(p, default_help="cpu")
    p.add_argument("--out", required=True, help="output directory (resumed when it holds the same run)")
    p.add_argument("--overwrite", action="store_true", help="start over when --out holds another run")
    p.add_argument("--shards", type=_count, default=1,
                   help="split the images into N units (whole chunks each) for the executor; 1: in process")
    _executor_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("data", help="prepare a data set")
    data_sub = p.add_subparsers(dest="dataset", required=True)
    m = data_sub.add_parser("mnist", help="verify the MNIST IDX files and write Caffe LMDBs")
    m.add_argument("--source", help="folder with the 4 IDX .gz files (default: $HOTCOLD_MNIST_DIR or download)")
    m.add_argument("--out", default="runs/data/mnist", help="output folder for the LMDBs")
    m.set_defaults(func=_cmd_data)
    m = data_sub.add_parser("imagenet", help="ImageNet (or class folders of photos) to Datum LMDBs, as convert_imageset")
    m.add_argument("--train", help="training folder: one sub-folder per class (n01440764/...)")
    m.add_argument("--val", help="validation folder: class sub-folders, or flat with --val-labels")
    m.add_argument("--val-labels", help="'<file> <label>' lines for a flat --val folder (Caffe's val.txt)")
    m.add_argument("--synsets", help="class names in label order, one per line (default: sorted sub-folders)")
    m.add_argument("--size", type=_count, default=256, help="records are SIZE x SIZE (Caffe's recipe: 256)")
    m.add_argument("--shorter-side", action="store_true",
                   help="resize the shorter side to --size and center-crop, instead of warping")
    m.add_argument("--seed", type=int, default=0, help="shuffle seed of the training LMDB")
    m.add_argument("--threads", type=_count, default=os.cpu_count() or 1, help="decoding threads")
    m.add_argument("--out", default="runs/data/imagenet", help="output folder for the LMDBs")
    m.add_argument("--quiet", action="store_true", help="no progress bars")
    m.set_defaults(func=_cmd_data_imagenet)

    p = sub.add_parser("models", help="the model zoo: published weights, the generated ImageNet prototxts")
    models_sub = p.add_subparsers(dest="action", required=True)
    m = models_sub.add_parser("fetch", help="download a model's published .caffemodel (resumable, SHA-1 checked)")
    m.add_argument("model", help="a shipped model name (bvlc_googlenet, resnet152) or a model YAML path")
    m.add_argument("--to", metavar="DIR", help="install into DIR instead of $HOTCOLD_MODELS_DIR/<name> "
                                               "(default ~/.cache/hotcold/models/<name>)")
    m.add_argument("--from", dest="source", metavar="FILE",
                   help="install this already downloaded file, after the same SHA-1 check")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    m.set_defaults(func=_cmd_models_fetch)
    m = models_sub.add_parser("build", help="write the ImageNet prototxts (GoogLeNet, ResNet-152) from their "
                                            "generators")
    m.add_argument("--out", metavar="DIR", help="output folder (default: hotcold's prototxt package data)")
    m.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 when a shipped prototxt differs from its generator")
    m.set_defaults(func=_cmd_models_build)

    m = data_sub.add_parser("infimnist", help="InfiMNIST-style deformed digits (or InfiMNIST's own, with "
                                              "--infimnist-data) into a Caffe LMDB; docs/infimnist.md")
    m.add_argument("--count", type=_count, required=True, help="samples to generate (paper: 1000000)")
    m.add_argument("--out", required=True, help="output folder (resumed when it holds the same run)")
    m.add_argument("--first", type=_count, default=70000,
                   help="first InfiMNIST index (>= 70000: lower indices are the MNIST images themselves)")
    m.add_argument("--infimnist-data", metavar="DIR",
                   help="InfiMNIST's data folder (fields_float_1522x28x28.bin, tangVec_float_60000x28x28.bin): "
                        "the samples are then InfiMNIST's own")
    m.add_argument("--source", help="folder with the 4 MNIST IDX .gz files (default: $HOTCOLD_MNIST_DIR or download)")
    m.add_argument("--overwrite", action="store_true", help="start over when --out holds another run")
    m.set_defaults(func=_cmd_infimnist)

    p = sub.add_parser("run", help="run an experiment YAML (stages resume when re-run)")
    p.add_argument("experiment", help="a built-in experiment name (mnist_quick, mnist_3nets, mnist_table1, "
                                      "mnist_fig6, imagenet_fig3, imagenet_googlenet_hp) or a YAML path")
    p.add_argument("--out", help="run directory (default: ./runs/<experiment name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a run directory of another experiment or code version, and recompute "
                        "units whose configuration changed")
    _executor_options(p)
    _device_options(p, default_help="the experiment's device:")
    p.add_argument("--units", metavar="PATTERN", help="run only the units matching PATTERN (e.g. 'train/*'), "
                                                      "with the units they need")
    p.add_argument("--max-hours", type=_number(above=0.0), metavar="H",
                   help="start no unit after H hours; the rest resumes later")
    p.add_argument("--export", metavar="DIR", help="then copy the finished units' manifests, weights and report "
                                                   "(no LMDB) into DIR")
    p.add_argument("--import", dest="import_from", metavar="DIR",
                   help="first take the units of an --export DIR of this experiment into the run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status. Bad input prints one error line and returns 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        os.environ["HOTCOLD_VERBOSE"] = "1"
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError, ImportError, RuntimeError, ArithmeticError) as exc:
        print(f"hotcold {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hotcold {args.command}: interrupted; finished work is kept, the same command resumes",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
