"""The ``hotcold`` command line: doctor, pass, generate, data, run."""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence


def _cmd_doctor(args: argparse.Namespace) -> int:
    from hotcold.caffe.doctor import main

    return main()


def _cmd_pass(args: argparse.Namespace) -> int:
    import cv2

    from hotcold.core.pass_measure import pass_score

    images = []
    for path in (args.adversarial, args.original):
        image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f"cannot read image {path!r}")
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
        images.append(image)
    result = pass_score(*images)
    if args.json:
        print(json.dumps({"pass": result.score, "converged": result.converged,
                          "homography": result.homography.tolist(), "message": result.message}))
    else:
        note = "" if result.converged else f"  (ECC did not converge: unaligned SSIM; {result.message})"
        print(f"PASS = {result.score:.6f}{note}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from hotcold.caffe.zoo import load_model
    from hotcold.core.methods import parse_methods
    from hotcold.core.search import SearchSettings
    from hotcold.data.image_sets import load_image_set
    from hotcold.pipeline.generation import generate_to_lmdb

    model = load_model(args.model)
    parse_methods(args.methods, num_classes=model.num_classes)  # fail fast on a bad name
    classifier = model.classifier(args.weights, deploy_prototxt=args.deploy, device=args.device)
    channels = model.input_shape[0]
    images, labels = load_image_set(args.images, labels=args.labels, channels=channels)
    if args.limit:
        images, labels = images[:args.limit], labels[:args.limit]
    summary = generate_to_lmdb(classifier, images, labels, args.methods, args.out, net_name=args.net_name,
                               tau=args.tau, scales=args.scales, settings=SearchSettings(max_eps=args.max_eps),
                               chunk_size=args.chunk_size, progress=not args.quiet)
    print(f"{summary.images} images in {summary.lmdb}; metadata {summary.metadata}; "
          f"{summary.seconds:.1f} s, {summary.forward_passes} Caffe forward calls")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    from hotcold.data.mnist import prepare_mnist

    paths = prepare_mnist(args.out, source=args.source)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from hotcold.pipeline.runner import run_experiment

    run_experiment(args.experiment, out=args.out, progress=not args.quiet)
    return 0


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
    p.add_argument("--weights", required=True, help=".caffemodel")
    p.add_argument("--deploy", help="deploy prototxt (default: the model's)")
    p.add_argument("--images", required=True, help="IDX image file, Datum LMDB, or folder of label sub-folders")
    p.add_argument("--labels", help="IDX label file (with an IDX image file)")
    p.add_argument("--methods", nargs="+", default=["FGS", "FGV", "HC-D-1..9", "HC-S-1"],
                   help="e.g. FGS FGV HC-D-1..9 HC-S-1 HC-D-1x1.05")
    p.add_argument("--scales", nargs="+", type=float, default=[1.0], help="hard-positive scales, 1 = minimal")
    p.add_argument("--tau", type=float, help="PASS threshold of Eq. 5")
    p.add_argument("--max-eps", type=float, default=255.0, help="line-search cap (pixel levels)")
    p.add_argument("--limit", type=int, help="use the first N images")
    p.add_argument("--chunk-size", type=int, default=500)
    p.add_argument("--net-name", default="net")
    p.add_argument("--device", default="cpu", help="cpu, gpu or gpu:N")
    p.add_argument("--out", required=True, help="output directory (resumed when it exists)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("data", help="prepare a data set")
    data_sub = p.add_subparsers(dest="dataset", required=True)
    m = data_sub.add_parser("mnist", help="verify the MNIST IDX files and write Caffe LMDBs")
    m.add_argument("--source", help="folder with the 4 IDX .gz files (default: $HOTCOLD_MNIST_DIR or download)")
    m.add_argument("--out", default="runs/data/mnist", help="output folder for the LMDBs")
    m.set_defaults(func=_cmd_data)

    p = sub.add_parser("run", help="run an experiment YAML (stages resume when re-run)")
    p.add_argument("experiment", help="a built-in experiment name (mnist_quick, mnist_3nets, mnist_table1) or a YAML path")
    p.add_argument("--out", help="run directory (default: ./runs/<experiment name>)")
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


if __name__ == "__main__":
    sys.exit(main())
