"""hotcold's minimal FGS / FGV against IBM ART's FastGradientMethod(minimal=True) on the same LeNet.

usage: .venv/bin/python benchmarks/bench_vs_art.py [--weights W] [--images 1000] [--offset 5000]
           [--mnist DIR] [--art-batch 32,256] [--linf-eps 255] [--l2-step 4] [--l2-eps 2550]
           [--threads 1] [--repeats 3] [--art-repeats 1] [--art-venv runs/bench-venv-art]
           [--out runs/bench-vs-art]

On the same N correctly classified MNIST test images (the first N from --offset on; --mnist defaults to
$HOTCOLD_MNIST_DIR), the same trained LeNet weights and one run, it measures

* hotcold FGS and FGV: ``compute_directions`` + ``line_search`` (secant strategy, the defaults), timed together;
* ART ``FastGradientMethod(norm=inf, minimal=True)`` with eps_step = 1/255 (one pixel level on ART's 0..1
  scale) and eps up to --linf-eps / 255 (default 255 levels = 1.0: the full pixel range, as hotcold's max_eps),
  the ART counterpart of FGS;
* ART ``FastGradientMethod(norm=2, minimal=True)``, the counterpart of FGV, with eps_step = --l2-step / 255
  and eps up to --l2-eps / 255 (both given in pixel levels). The default step, 4 levels of L2, is chosen to
  match the L-inf setting's resolution: along this LeNet's FGV directions the median L2 / L-inf ratio of the
  minimal adversarial is about 4.5 (492 / 109 levels on the default 1000 images), so an L2 step of 4 levels
  moves the strongest pixel by about one level, as the L-inf step of 1/255 moves every pixel by one. On the
  first 100 images a step of 1 level costs 4x the forward passes (1105 against 279 per adversarial) for a
  median L2 of 508.8 instead of 510.6 (hotcold: 508.5), and more of its adversarials stop being adversarial
  when rounded to uint8 (17 against 4 of 100). The cap, 2550 levels (10.0 on ART's scale), lies far beyond
  any minimal FGV adversarial of this net;

each at every ART batch size in --art-batch (ART's minimal loop re-classifies its whole batch every step until
the last image of the batch flips, so the batch size trades forward passes against per-call overhead). It
prints a Markdown table: adversarials found / N, adversarials/s (the best of --repeats timings for hotcold,
whose runs take a second or less, and of --art-repeats for ART), images run through the network's forward
pass per adversarial (gradient forward passes included; the search's share in parentheses), median L-inf and
L2 of the perturbation in pixel levels (0..255) over the adversarials found, and how many of them stay
adversarial as uint8 images (hotcold's always are: its candidates are discrete; ART's are rounded to the
nearest pixel level and classified by Caffe).

Forward passes counted: for hotcold, one per image for the directions (forward + backward) plus
``SearchResult.evaluations`` (every candidate the search classified, the not-found jobs' included). For ART, a
counter in the PyTorch module's forward: every image of ``generate`` -- the loss-gradient pass, every step of
the minimal loop, and ART's own success-rate check at the end of ``generate`` (2 N); "search" is the share of
the minimal loop's classifications.

Design: two processes in two virtualenvs, so that neither ART nor torch ever enters the project's venv and the
tests never need them.

1. This script, run with the project venv (hotcold + pycaffe), loads the Caffe LeNet, picks the images, and
   bootstraps the benchmark venv when it is missing or broken: ``python -m venv`` (the base interpreter of the
   project's Python), then ``pip install torch`` from the CPU wheel index
   (https://download.pytorch.org/whl/cpu; pip's configured find-links / indexes are searched as well), then
   ``pip install adversarial-robustness-toolbox numpy packaging``; pip's output goes to <venv>/install.log.
   The default location, runs/bench-venv-art, lies in the git-ignored runs/ directory; delete it to reinstall.
2. It exports the Caffe weights (pycaffe ``net.params``: conv1, conv2, ip1, ip2), the input scale, the images,
   and Caffe's ip2 logits of 500 test images to ``<out>/art_input.npz``, then runs this same file with the
   benchmark venv's Python as ``--worker <in.npz> <out.npz>``. The worker imports only numpy, torch and ART.
3. The worker rebuilds LeNet in PyTorch (conv1 20 5x5 -> max pool 2x2/2 -> conv2 50 5x5 -> max pool 2x2/2 ->
   ip1 500 -> ReLU -> ip2 10, the layers of prototxt/lenet_deploy.prototxt; input on ART's 0..1 scale times
   255 * input_scale, so 0..1 maps to Caffe's uint8 * 1/256). It aborts with a clear message unless its logits
   equal Caffe's to 1e-4 on the 500 images. The module's weights are frozen (hotcold's Caffe nets freeze
   theirs too). It runs ART, checks which outputs are adversarial with the same module, and writes adversarials,
   timings and forward counts to ``<out>/art_output.npz``.
4. The parent computes every statistic (norms, uint8 rounding checked with Caffe) and prints the table.

Both halves get the same number of threads, --threads: Caffe's OpenBLAS threads (OPENBLAS_NUM_THREADS, set
before Caffe loads; 1 is hotcold's own default, hotcold/caffe/runtime.py) and torch's intra-op threads
(``torch.set_num_threads``). One thread each (the default) also keeps the timings steadier on a shared machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHECK_IMAGES = 500
CHECK_TOLERANCE = 1e-4
LAYERS = ("conv1", "conv2", "ip1", "ip2")
"""Parameterized layers of the deploy LeNet, in order; the worker's module mirrors them."""
EXPECTED_TYPES = ("Input", "Convolution", "Pooling", "Convolution", "Pooling", "InnerProduct", "ReLU",
                  "InnerProduct", "Softmax")


# -- the benchmark venv -------------------------------------------------------------------------------------
def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _venv_works(venv: Path) -> bool:
    python = _venv_python(venv)
    if not python.exists():
        return False
    probe = subprocess.run([str(python), "-c", "import numpy, torch, art"], check=False, capture_output=True)
    return probe.returncode == 0


def ensure_art_venv(venv: Path) -> dict:
    """Create the ART + torch venv unless a working one is there; returns what was done (seconds, size)."""
    if _venv_works(venv):
        return {"created": False}
    print(f"creating the benchmark venv {venv} (torch CPU + adversarial-robustness-toolbox) ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    log = venv / "install.log"
    pip = [str(_venv_python(venv)), "-m", "pip", "install", "--retries", "2"]
    # torch from the CPU wheel index first, so pip never takes the CUDA build of torch (and its nvidia-* wheels)
    # from PyPI; ART imports `packaging` without declaring it.
    for args in (["--index-url", TORCH_CPU_INDEX, "torch"], ["adversarial-robustness-toolbox", "numpy", "packaging"]):
        with open(log, "a") as out:
            done = subprocess.run(pip + args, check=False, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode:
            sys.exit(f"error: `pip install {' '.join(args)}` failed in {venv}; see {log}")
    seconds = time.perf_counter() - t0
    if not _venv_works(venv):
        sys.exit(f"error: {venv} was created but cannot import numpy, torch and art; delete it and retry")
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"benchmark venv ready in {seconds:.0f} s, {size / 2**20:.0f} MiB", flush=True)
    return {"created": True, "seconds": seconds, "mib": size / 2**20}


def _venv_versions(venv: Path) -> str:
    code = ("import torch, art, numpy; "
            "print(f'torch {torch.__version__}, ART {art.__version__}, numpy {numpy.__version__}')")
    return subprocess.run([str(_venv_python(venv)), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


# -- the hotcold half (project venv) ------------------------------------------------------------------------
def _export_weights(clf) -> dict[str, np.ndarray]:
    types = tuple(layer.type for layer in clf.net.layers)
    if types != EXPECTED_TYPES:
        sys.exit(f"error: the deploy net's layers are {types}, the PyTorch LeNet mirrors {EXPECTED_TYPES}")
    if np.any(clf.mean != 0) or clf.channel_swap is not None or clf.channels != 1:
        sys.exit("error: the PyTorch LeNet assumes one channel, no mean and no channel swap")
    out = {}
    for name in LAYERS:
        weight, bias = clf.net.params[name]
        out[f"{name}_weight"] = np.array(weight.data, np.float32)
        out[f"{name}_bias"] = np.array(bias.data, np.float32)
    return out


def _norms(delta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = delta.reshape(len(delta), -1).astype(np.float64)
    return np.abs(flat).max(axis=1, initial=0.0), np.linalg.norm(flat, axis=1)


def run_hotcold(clf, x: np.ndarray, y: np.ndarray, repeats: int) -> list[dict]:
    from hotcold.core.directions import compute_directions
    from hotcold.core.methods import parse_methods
    from hotcold.core.search import SearchSettings, line_search

    clf.predict(x)  # warm up
    rows = []
    for family in ("FGS", "FGV"):
        best = np.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            d = compute_directions(clf, x, y, parse_methods(family))
            r = line_search(clf, x, d.eta_hat[0], y, SearchSettings(), logits=d.logits)
            best = min(best, time.perf_counter() - t0)
        found = np.flatnonzero(r.found)
        if np.any(clf.classify(r.images[found]) == y[found]):
            sys.exit(f"error: hotcold {family} returned an image that is not adversarial")
        linf, l2 = _norms(r.images[found].astype(np.int64) - x[found])
        search = int(r.evaluations.sum())
        rows.append({"method": f"hotcold {family}", "setting": "line search (secant), max_eps 255", "batch": "1000",
                     "found": len(found), "seconds": best, "forwards": len(x) + search, "search": search,
                     "linf": linf, "l2": l2, "uint8": len(found)})
    return rows


def art_rows(clf, x: np.ndarray, y: np.ndarray, out: dict, configs: list[dict]) -> list[dict]:
    rows = []
    x01 = x.astype(np.float32) / 255
    for i, cfg in enumerate(configs):
        adv = out[f"adv{i}"][:, 0]
        found = np.flatnonzero(out[f"pred{i}"] != y)
        linf, l2 = _norms(255 * (adv[found].astype(np.float64) - x01[found]))
        rounded = np.clip(np.rint(adv[found].astype(np.float64) * 255), 0, 255).astype(np.uint8)
        uint8 = int(np.sum(clf.classify(rounded) != y[found])) if len(found) else 0
        step = cfg["eps_step"] * 255
        rows.append({"method": f"ART FGM {cfg['norm_name']}", "setting":
                     f"eps_step {step:.3g} level{'s' if step != 1 else ''}, eps <= {cfg['eps'] * 255:.0f}",
                     "batch": str(cfg["batch"]), "found": len(found), "seconds": float(out[f"seconds{i}"]),
                     "forwards": int(out[f"forwards{i}"]), "search": int(out[f"search{i}"]),
                     "linf": linf, "l2": l2, "uint8": uint8})
    return rows


def table(rows: list[dict], n: int) -> str:
    lines = [("| method | setting (pixel levels) | batch | found | adversarials/s | forward passes / adversarial "
              "(search) | median L-inf | median L2 | adversarial as uint8 |"),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        f = max(r["found"], 1)
        lines.append(f"| {r['method']} | {r['setting']} | {r['batch']} | {r['found']}/{n} "
                     f"| {r['found'] / r['seconds']:.0f} | {r['forwards'] / f:.1f} ({r['search'] / f:.1f}) "
                     f"| {np.median(r['linf']) if r['found'] else float('nan'):.1f} "
                     f"| {np.median(r['l2']) if r['found'] else float('nan'):.1f} | {r['uint8']}/{r['found']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=str(REPO / "runs/mnist_quick/train/base0/final.caffemodel"))
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--offset", type=int, default=5000)
    parser.add_argument("--mnist", default=os.environ.get("HOTCOLD_MNIST_DIR"))
    parser.add_argument("--art-batch", default="32,256", help="ART batch sizes, comma-separated")
    parser.add_argument("--linf-eps", type=float, default=255.0, help="ART L-inf eps cap in pixel levels")
    parser.add_argument("--l2-step", type=float, default=4.0, help="ART L2 eps_step in pixel levels")
    parser.add_argument("--l2-eps", type=float, default=2550.0, help="ART L2 eps cap in pixel levels")
    parser.add_argument("--threads", type=int, default=1, help="Caffe BLAS threads = torch threads")
    parser.add_argument("--repeats", type=int, default=3, help="hotcold timings per method; the best is reported")
    parser.add_argument("--art-repeats", type=int, default=1, help="ART timings per setting; the best is reported")
    parser.add_argument("--art-venv", default=str(REPO / "runs/bench-venv-art"))
    parser.add_argument("--out", default=str(REPO / "runs/bench-vs-art"), help="folder for the exchange files")
    parser.add_argument("--worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), Path(args.worker[1]))
        return

    os.environ["OPENBLAS_NUM_THREADS"] = str(args.threads)  # before Caffe (and its OpenBLAS) loads
    import hotcold
    from hotcold.data.mnist import load_mnist

    venv = Path(args.art_venv)
    install = ensure_art_venv(venv)
    versions = _venv_versions(venv)

    clf = hotcold.load_model("lenet").classifier(args.weights, batch_size=1000)
    mnist = load_mnist(args.mnist)
    end = args.offset + 3 * args.images
    x, y = mnist.test_images[args.offset:end], mnist.test_labels[args.offset:end].astype(np.int64)
    ok = clf.classify(x) == y
    x, y = x[ok][:args.images], y[ok][:args.images]
    if len(x) < args.images:
        sys.exit(f"error: only {len(x)} correctly classified test images from index {args.offset}")

    configs = []
    for batch in (int(b) for b in args.art_batch.split(",")):
        configs.append({"norm": "inf", "norm_name": "L-inf", "eps": args.linf_eps / 255, "eps_step": 1 / 255,
                        "batch": batch})
        configs.append({"norm": 2, "norm_name": "L2", "eps": args.l2_eps / 255, "eps_step": args.l2_step / 255,
                        "batch": batch})
    configs.sort(key=lambda c: (c["norm_name"] != "L-inf", c["batch"]))

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_x = mnist.test_images[:CHECK_IMAGES]
    np.savez(out_dir / "art_input.npz", x=x, y=y, check_x=check_x, check_logits=clf.predict(check_x),
             scale=np.float64(255 * clf.input_scale), repeats=args.art_repeats, threads=args.threads,
             configs=json.dumps(configs), **_export_weights(clf))

    print(f"{len(x)} correctly classified MNIST test images from index {args.offset}; {os.cpu_count()} CPU cores, "
          f"{args.threads} thread(s) for Caffe's OpenBLAS and for torch; {versions}", flush=True)
    hot = run_hotcold(clf, x, y, args.repeats)
    print("hotcold done; running ART in the benchmark venv ...", flush=True)
    t0 = time.perf_counter()
    subprocess.run([str(_venv_python(venv)), str(Path(__file__).resolve()), "--worker",
                    str(out_dir / "art_input.npz"), str(out_dir / "art_output.npz")], check=True)
    art_seconds = time.perf_counter() - t0
    with np.load(out_dir / "art_output.npz") as out:
        print(str(out["check"]))
        rows = hot + art_rows(clf, x, y, dict(out), configs)
    order = {"L-inf": 0, "FGS": 0, "L2": 1, "FGV": 1}
    rows.sort(key=lambda r: order[r["method"].split()[-1]])
    print()
    print(table(rows, len(x)))
    print(f"\nART half: {art_seconds:.0f} s wall (torch import, check and every ART run)")
    if install["created"]:
        print(f"benchmark venv created in {install['seconds']:.0f} s, {install['mib']:.0f} MiB")


# -- the ART half (benchmark venv: numpy, torch, ART only) ---------------------------------------------------
def worker(src: Path, dst: Path) -> None:
    import torch
    from art.attacks.evasion import FastGradientMethod
    from art.estimators.classification import PyTorchClassifier

    with np.load(src) as f:
        data = dict(f)
    configs = json.loads(str(data["configs"]))
    repeats = int(data["repeats"])
    torch.set_num_threads(int(data["threads"]))

    class LeNet(torch.nn.Module):
        """The deploy LeNet with Caffe's weights; counts the images of every forward pass."""

        def __init__(self, weights: dict[str, np.ndarray], scale: float) -> None:
            super().__init__()
            self.scale = scale
            self.conv1 = torch.nn.Conv2d(1, 20, 5)
            self.conv2 = torch.nn.Conv2d(20, 50, 5)
            self.ip1 = torch.nn.Linear(800, 500)
            self.ip2 = torch.nn.Linear(500, 10)
            # Caffe rounds pooled sizes up (ceil_mode); 24 and 8 are even here, so it changes nothing.
            self.pool = torch.nn.MaxPool2d(2, 2, ceil_mode=True)
            for name in LAYERS:
                layer = getattr(self, name)
                layer.weight.data.copy_(torch.from_numpy(weights[f"{name}_weight"]).reshape(layer.weight.shape))
                layer.bias.data.copy_(torch.from_numpy(weights[f"{name}_bias"]).reshape(layer.bias.shape))
            self.requires_grad_(False)
            self.images = {True: 0, False: 0}  # by torch.is_grad_enabled()

        def forward(self, x):
            self.images[torch.is_grad_enabled()] += int(x.shape[0])
            x = self.pool(self.conv1(x * self.scale))
            x = self.pool(self.conv2(x))
            return self.ip2(torch.relu(self.ip1(x.flatten(1))))

        def count(self) -> int:
            return self.images[True] + self.images[False]

    model = LeNet(data, float(data["scale"])).eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(data["check_x"].astype(np.float32)[:, None] / 255)).numpy()
    diff = float(np.abs(logits - data["check_logits"]).max())
    if not diff <= CHECK_TOLERANCE:
        sys.exit(f"error: the PyTorch LeNet's logits differ from Caffe's by up to {diff:.3g} (> {CHECK_TOLERANCE})"
                 f" on {len(logits)} MNIST test images: the weight export or the layer mapping is wrong")
    check = (f"PyTorch LeNet equals Caffe: max |logit difference| {diff:.2g} on {len(logits)} test images; "
             f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    x = data["x"].astype(np.float32)[:, None] / 255
    y = data["y"].astype(np.int64)
    classifier = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 28, 28),
                                   nb_classes=10, clip_values=(0.0, 1.0), device_type="cpu")
    classifier.predict(x[:256])  # warm up
    results = {"check": check}
    for i, cfg in enumerate(configs):
        norm = np.inf if cfg["norm"] == "inf" else cfg["norm"]
        attack = FastGradientMethod(classifier, norm=norm, eps=cfg["eps"], eps_step=cfg["eps_step"],
                                    minimal=True, batch_size=cfg["batch"])
        in_search = [0]
        minimal = attack._minimal_perturbation

        def counted(*a, _minimal=minimal, _in_search=in_search, **kw):
            # The minimal loop's classifications (no-grad forward passes), apart from its gradient passes.
            before = model.images[False]
            result = _minimal(*a, **kw)
            _in_search[0] += model.images[False] - before
            return result

        attack._minimal_perturbation = counted
        best = np.inf
        for _ in range(repeats):
            start, in_search[0] = model.count(), 0
            t0 = time.perf_counter()
            adv = attack.generate(x, y=y)
            best = min(best, time.perf_counter() - t0)
            forwards = model.count() - start
        with torch.no_grad():
            pred = model(torch.from_numpy(adv.astype(np.float32))).argmax(1).numpy()
        results.update({f"adv{i}": adv.astype(np.float32), f"pred{i}": pred, f"seconds{i}": best,
                        f"forwards{i}": forwards, f"search{i}": in_search[0]})
        print(f"  ART {cfg['norm_name']} batch {cfg['batch']}: {best:.1f} s, {int(np.sum(pred != y))} found",
              flush=True)
    np.savez(dst, **results)


if __name__ == "__main__":
    main()
