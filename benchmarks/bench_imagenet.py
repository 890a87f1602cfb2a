"""The 224 x 224 x 3 figures: GoogLeNet / ResNet-152 forward and B_l images/s, PASS pairs/s on real photos.

usage: .venv/bin/python benchmarks/bench_imagenet.py [--nets googlenet resnet152] [--batch 10] [--repeats 3]

The nets are the shipped full-size deploy prototxts (``prototxt/bvlc_googlenet_deploy.prototxt``,
``prototxt/resnet152_deploy.prototxt``) with Caffe's random initialisation: speed does not depend on the
weights' values, and the Model Zoo weights cannot be downloaded here. Workloads:

* ``forward``: ``CaffeClassifier.predict`` of a batch of photos (logits at ``loss3/classifier`` / ``fc1000``);
* ``B_l``: ``backprop_many`` from the logits blob with one seed per image (one forward + one backward pass,
  the cost of one hot/cold or FGV direction, Sec. 4.2 / 4.3);
* ``PASS``: ``pass_scores`` of photo pairs (scikit-image's sample photos, 224 x 224 center crops) perturbed
  as the generation does: FGS-like +-4 sign noise and a smooth low-frequency field of up to 12 levels.

Each figure is the best of ``--repeats`` timed calls after one warm-up call, on one BLAS thread
(hotcold's default, for identical results on every executor).
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from hotcold.caffe.classifier import CaffeClassifier
from hotcold.caffe.runtime import import_caffe
from hotcold.caffe.zoo import load_model, package_data
from hotcold.core.pass_measure import pass_scores

_PROTOTXT = {"googlenet": ("bvlc_googlenet", "bvlc_googlenet_deploy.prototxt"),
             "resnet152": ("resnet152", "resnet152_deploy.prototxt")}
_PHOTOS = ("chelsea", "coffee", "rocket", "astronaut", "immunohistochemistry", "hubble_deep_field")


def photos(n: int) -> np.ndarray:
    """``n`` RGB 224 x 224 center crops of scikit-image's colour sample photos (cycled)."""
    import cv2
    import skimage.data

    out = []
    for i in range(n):
        image = getattr(skimage.data, _PHOTOS[i % len(_PHOTOS)])()
        h, w = image.shape[:2]
        side = min(h, w)
        square = image[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
        out.append(cv2.resize(square, (224, 224), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def best(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def classifier(name: str, tmp: Path) -> CaffeClassifier:
    """The full-size net with random weights (Caffe's fillers)."""
    caffe = import_caffe()
    model, file = _PROTOTXT[name]
    deploy = package_data("prototxt") / file
    net = caffe.Net(str(deploy), caffe.TEST)
    weights = tmp / f"{name}.caffemodel"
    net.save(str(weights))
    spec = load_model(model)
    mean = spec.mean if not isinstance(spec.mean, Path) else [104.0, 117.0, 123.0]
    return CaffeClassifier(deploy, weights, logits_blob=spec.logits_blob, mean=mean, channel_swap=spec.channel_swap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="+", default=["googlenet", "resnet152"], choices=sorted(_PROTOTXT))
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--pass-pairs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', '(hotcold default 1)')}\n")
    print("| workload | batch | seconds | images/s |\n|---|---:|---:|---:|")
    x = photos(args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets:
            clf = classifier(name, Path(tmp))
            seconds = best(lambda: clf.predict(x), args.repeats)
            print(f"| {name} forward | {args.batch} | {seconds:.2f} | {args.batch / seconds:.1f} |")
            seed = np.eye(clf.num_classes, dtype=np.float32)[np.arange(args.batch) % clf.num_classes]
            seconds = best(lambda: clf.backprop_many(x, clf.logits_blob, [seed]), args.repeats)
            print(f"| {name} B_l (forward + backward) | {args.batch} | {seconds:.2f} | {args.batch / seconds:.1f} |")
    rng = np.random.default_rng(0)
    originals = photos(args.pass_pairs)
    sign = 4 * rng.choice([-1, 1], size=originals.shape)
    field = np.repeat(np.repeat(rng.normal(0, 6, (args.pass_pairs, 7, 7, 3)), 32, axis=1), 32, axis=2)
    adversarial = np.clip(originals + np.where(np.arange(args.pass_pairs)[:, None, None, None] % 2, sign, field),
                          0, 255).astype(np.uint8)
    seconds = best(lambda: pass_scores(adversarial, originals), args.repeats)
    print(f"| PASS 224x224x3, photo pairs | {args.pass_pairs} | {seconds:.2f} | {args.pass_pairs / seconds:.1f} |")


if __name__ == "__main__":
    main()
