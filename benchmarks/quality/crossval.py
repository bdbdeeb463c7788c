"""The evaluation protocol: napari-unet against a plain U-Net loop, same process, same
seconds, on folds and image kinds that no setting was chosen on.

    python benchmarks/quality/crossval.py [--seconds 150] [--isbi-seconds 180] [--folds N]
                                  [--seeds 2] [--groups dsb isbi fluo-to-varied varied-to-others]
    python benchmarks/quality/crossval.py --quick          # 20 s, 2 DSB folds, 1 seed: a check that it runs
    python benchmarks/quality/crossval.py --strokes [--stroke-seconds 20 60] [--seeds 2]

Settings (``--groups``):

* ``dsb``: 4-fold over the 40 DSB 2018 fluorescence images (``../shared/data/dsb2018``):
  train on 30 (``instance`` labels), score the 10 others (folds are contiguous blocks).
* ``isbi``: 5-fold over the 25 ISBI 2012 slices: train on 20 (``semantic`` membranes),
  score the 5 others (contiguous blocks, as neighbouring slices look alike).
* ``fluo-to-varied``: train on the 40 DSB fluorescence images, score each group of
  ``dsb2018/varied/``: 360x360 dense fluorescence, 512x640 dim fluorescence, 1024x1024
  bright-field (dark nuclei on a bright background).
* ``varied-to-others``: train on one varied group, score the other two and the 40
  fluorescence images.

Every cell runs for every seed (``--seeds N``: seeds 0..N-1) and, for the k-folds, every
fold (``--folds N``: the first N folds). napari-unet trains and predicts exactly as
``napari-unet train`` / ``predict`` with their defaults (``cli.make_trainer`` and
``cli.make_predictor`` on parsed default arguments, only ``--labels-kind``, ``--seconds``
and ``--seed`` given); the plain loop is ``plain_unet.train_plain`` (2 classes, foreground
p >= 0.5, objects = connected components without the ones below the CLI's ``--min-size``),
with the same thread count. The two alternate which goes first, against drift of other
load. Metrics: foreground IoU, F1 at IoU 0.5 (``core.metrics``), predicted / true
foreground pixels; for ISBI pixel error and Rand error. Each table gives mean +- sd over
folds x seeds (x test groups where several are pooled).

``--strokes``: simulated strokes on 10 DSB images (every 4th), in two styles:
``strokes.strokes`` (filled nuclei, strokes along nuclei, background strokes) and
``strokes.dabs_lines_edges`` (short dabs, long lines across several nuclei, arcs along
outlines); napari-unet (``--labels-kind annotation`` defaults) for each of
``--stroke-seconds`` against ``strokes.forest`` (random forest on multiscale features),
scored on the 30 other images.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import time
from collections import defaultdict

import numpy as np
import tifffile
from _common import DATA, add_smoke, need, table, use_smoke_data

VARIED = {"360x360": "dense fluo", "512x640": "dim fluo", "1024x1024": "bright-field"}
#: The fluorescence kinds of ``varied/`` (the bright-field images have the inverse contrast).
VARIED_FLUO = {size: name for size, name in VARIED.items() if name != "bright-field"}
GROUPS = ("dsb", "isbi", "fluo-to-varied", "varied-to-others")
DSB_FOLDS, ISBI_FOLDS = 4, 5


# ---------------------------------------------------------------- data
def dsb():
    folder = need(DATA / "dsb2018")
    return tifffile.imread(folder / "fluo_image.tif"), tifffile.imread(folder / "fluo_labels.tif")


def varied(group: str):
    folder = need(DATA / "dsb2018" / "varied")
    return (tifffile.imread(folder / f"{group}_image.tif"),
            tifffile.imread(folder / f"{group}_labels.tif"))


def isbi():
    folder = need(DATA / "isbi2012")
    return (tifffile.imread(folder / "train_image.tif"),
            (tifffile.imread(folder / "train_membrane.tif") > 0).astype(np.uint8))


def folds(n: int, k: int) -> list[np.ndarray]:
    """Test indices of k contiguous folds over n items."""
    return np.array_split(np.arange(n), k)


# ---------------------------------------------------------------- the two methods
def cli_args(*argv: str):
    from napari_unet.cli import build_parser

    return build_parser().parse_args(list(argv))


def fit(images: np.ndarray, labels: np.ndarray, kind: str, seconds: float | None, seed: int,
        options: tuple[str, ...] = ()):
    """The trainer of ``napari-unet train --labels-kind KIND --seconds S --seed N
    [OPTIONS]`` after its run (``seconds`` None: the budget is in ``options``)."""
    from napari_unet.cli import make_trainer

    budget = [] if seconds is None else ["--seconds", str(seconds)]
    args = cli_args("train", "--image", "in-memory.tif", "--labels", "in-memory.tif",
                    "--labels-kind", kind, "--out", "unused.pt", *budget,
                    "--seed", str(seed), *options)
    trainer = make_trainer(args, [images], [labels])
    for _ in trainer.fit():
        pass
    return trainer


def predictor_of(trainer, predict_options: tuple[str, ...] = ()):
    """The predictor ``napari-unet predict [OPTIONS]`` makes of the trained model, and the
    parsed options."""
    from napari_unet.cli import make_predictor

    popts = cli_args("predict", "--model", "unused.pt", "--image", "in-memory.tif",
                     "--out", "unused.tif", *predict_options)
    return make_predictor(trainer.bundle(), popts), popts


def train_project(images: np.ndarray, labels: np.ndarray, kind: str, seconds: float | None,
                  seed: int, options: tuple[str, ...] = ()):
    """napari-unet as :func:`fit` trains it; returns ``predict(stack, predict_options=())
    -> (labels, instances)``, the iterations and the pixels per second."""
    trainer = fit(images, labels, kind, seconds, seed, options)

    def predict(stack: np.ndarray, predict_options: tuple[str, ...] = ()):
        """Labels and instances of ``stack`` as ``napari-unet predict [OPTIONS]`` gives."""
        predictor, popts = predictor_of(trainer, predict_options)
        out = predictor.predict(stack, instances=True, min_size=popts.min_size)
        return out.labels, out.instances

    history = trainer.bundle().history[-1]
    return predict, trainer.run_iteration, trainer.config.batch_size * \
        trainer.config.patch_size**2 * trainer.run_iteration / max(history["seconds"], 1e-9)


def train_reference(images: np.ndarray, labels: np.ndarray, seconds: float, seed: int):
    """The plain loop on foreground masks; same return as :func:`train_project`."""
    from plain_unet import BATCH, SIDE, train_plain
    from skimage.measure import label as connected

    from napari_unet.core.decision import FOREGROUND_THRESHOLD
    from napari_unet.core.predict.tiles import drop_small

    min_size = cli_args("predict", "--model", "m", "--image", "i", "--out", "o").min_size
    start = time.perf_counter()
    fn = train_plain(list(images), list(labels > 0), seconds, seed)
    took = time.perf_counter() - start

    def predict(stack: np.ndarray):
        fg = np.stack([fn(im) >= FOREGROUND_THRESHOLD for im in stack]).astype(np.uint8)
        inst = np.stack([drop_small(connected(f), min_size) for f in fg])
        return fg, inst

    return predict, fn.iterations, BATCH * SIDE**2 * fn.iterations / took


def run_both(images, labels, kind, seconds, seed, order: int):
    """Both methods on one training set, the first chosen by ``order``'s parity."""
    import torch

    from napari_unet.core.models.device import cpu_threads

    names = ["napari-unet", "plain U-Net"]
    if order % 2:
        names.reverse()
    out = {}
    for name in names:
        torch.set_num_threads(cpu_threads(False))
        if name == "napari-unet":
            out[name] = train_project(images, labels, kind, seconds, seed)
        else:
            out[name] = train_reference(images, labels, seconds, seed)
    return out


# ---------------------------------------------------------------- scores
def nuclei_scores(fg: np.ndarray, inst: np.ndarray, truth: np.ndarray) -> dict:
    from napari_unet.core.metrics import foreground_iou, instance_scores

    return {"fg IoU": foreground_iou(fg > 0, truth > 0),
            "F1@0.5": instance_scores(inst, truth)["f1"],
            "fg ratio": float(np.count_nonzero(fg)) / max(np.count_nonzero(truth), 1)}


def membrane_scores(pred: np.ndarray, truth: np.ndarray) -> dict:
    from napari_unet.core.metrics import pixel_error, rand_error

    pred = (pred > 0).astype(np.uint8)
    return {"pixel error": pixel_error(pred, truth), "Rand error": rand_error(pred, truth),
            "fg ratio": float(np.count_nonzero(pred)) / max(np.count_nonzero(truth), 1)}


def mean_sd(values: list[float]) -> str:
    v = np.asarray(values, np.float64)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


class Results:
    """Scores per (setting, method): one dict per fold x seed."""

    def __init__(self):
        self.cells: dict[tuple[str, str], list[dict]] = defaultdict(list)

    def add(self, setting: str, method: str, scores: dict, iterations: int, px_per_s: float):
        self.cells[setting, method].append({**scores, "iterations": iterations,
                                            "Mpx/s": px_per_s / 1e6})

    def table(self, title: str, metrics: list[str]) -> str:
        rows = []
        settings = list(dict.fromkeys(s for s, _ in self.cells))
        for (setting, method), runs in sorted(self.cells.items(),
                                              key=lambda c: (settings.index(c[0][0]), c[0][1])):
            if not all(m in runs[0] for m in metrics):
                continue
            rows.append([setting, method, len(runs)]
                        + [mean_sd([r[m] for r in runs]) for m in metrics]
                        + [f"{np.mean([r['iterations'] for r in runs]):.0f}",
                           f"{np.mean([r['Mpx/s'] for r in runs]):.2f}"])
        return table(title, ["setting", "method", "n", *metrics, "steps", "Mpx/s"], rows,
                     [26, 16, 3] + [15] * len(metrics) + [6, 6])


# ---------------------------------------------------------------- protocol
def run_dense(args) -> None:
    results = Results()
    seeds = range(args.seeds)
    t0 = time.perf_counter()
    order = 0
    if "dsb" in args.groups:
        images, labels = dsb()
        for f, test in enumerate(folds(len(images), DSB_FOLDS)[: args.folds or DSB_FOLDS]):
            train = np.setdiff1d(np.arange(len(images)), test)
            for seed in seeds:
                runs = run_both(images[train], labels[train], "instance", args.seconds, seed, order)
                order += 1
                for method, (predict, its, rate) in runs.items():
                    fg, inst = predict(images[test])
                    results.add("DSB fluo k-fold", method, nuclei_scores(fg, inst, labels[test]),
                                its, rate)
                print(f"  DSB fold {f} seed {seed} done at {time.perf_counter() - t0:.0f} s",
                      flush=True)
    if "isbi" in args.groups:
        images, labels = isbi()
        for f, test in enumerate(folds(len(images), ISBI_FOLDS)[: args.folds or ISBI_FOLDS]):
            train = np.setdiff1d(np.arange(len(images)), test)
            for seed in seeds:
                runs = run_both(images[train], labels[train], "semantic", args.isbi_seconds,
                                seed, order)
                order += 1
                for method, (predict, its, rate) in runs.items():
                    pred, _ = predict(images[test])
                    results.add("ISBI k-fold", method, membrane_scores(pred, labels[test]),
                                its, rate)
                print(f"  ISBI fold {f} seed {seed} done at {time.perf_counter() - t0:.0f} s",
                      flush=True)
    sets = {"fluo": dsb()} if {"fluo-to-varied", "varied-to-others"} & set(args.groups) else {}
    if sets:
        sets.update({g: varied(g) for g in VARIED})
    plans = []
    if "fluo-to-varied" in args.groups:
        plans.append(("fluo", list(VARIED)))
    if "varied-to-others" in args.groups:
        plans += [(g, [o for o in ["fluo", *VARIED] if o != g]) for g in VARIED]
    for source, targets in plans:
        images, labels = sets[source]
        for seed in seeds:
            runs = run_both(images, labels, "instance", args.seconds, seed, order)
            order += 1
            for method, (predict, its, rate) in runs.items():
                for target in targets:
                    fg, inst = predict(sets[target][0])
                    name = f"{VARIED.get(source, source)} -> {VARIED.get(target, target)}"
                    results.add(name, method, nuclei_scores(fg, inst, sets[target][1]), its,
                                rate)
            print(f"  {source} seed {seed} done at {time.perf_counter() - t0:.0f} s", flush=True)
    if set(args.groups) - {"isbi"}:
        print()
        print(results.table(f"nuclei, {args.seconds:g} s of training each, mean ± sd over "
                            "folds x seeds", ["fg IoU", "F1@0.5", "fg ratio"]))
    if "isbi" in args.groups:
        print()
        print(results.table(f"ISBI membranes, {args.isbi_seconds:g} s each",
                            ["pixel error", "Rand error", "fg ratio"]))


def run_strokes(args) -> None:
    from strokes import dabs_lines_edges, forest, instances_of, strokes

    images, labels = dsb()
    train_idx = np.arange(0, 40, 4)
    test_idx = np.setdiff1d(np.arange(40), train_idx)
    truth = labels[test_idx]
    results = Results()
    styles = {"strokes (strokes.py)": strokes, "dabs, lines, edges": dabs_lines_edges}
    t0 = time.perf_counter()
    for style, draw in styles.items():
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            ann = np.stack([draw(labels[i], rng) for i in train_idx])
            setting = style  # the seeds of a style pooled in one row
            fg, rf_s = forest(images[train_idx], ann, images[test_idx], seed)
            print(f"  random forest trained in {rf_s:.0f} s", flush=True)
            results.add(setting, "random forest", nuclei_scores(fg, instances_of(fg), truth),
                        0, 0.0)
            for seconds in args.stroke_seconds:
                predict, its, rate = train_project(images[train_idx], ann, "annotation",
                                                   seconds, seed)
                fg, inst = predict(images[test_idx])
                results.add(setting, f"napari-unet {seconds:g} s",
                            nuclei_scores(fg, inst, truth), its, rate)
            print(f"  {style} seed {seed} ({(ann > 0).mean():.1%} of pixels painted) done at "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    print()
    print(results.table("strokes on 10 DSB images, scored on the 30 others, mean ± sd over seeds",
                        ["fg IoU", "F1@0.5", "fg ratio"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150, help="training time of each nuclei run")
    ap.add_argument("--isbi-seconds", type=float, default=180)
    ap.add_argument("--folds", type=int, default=None, help="run only the first N folds")
    ap.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    ap.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS))
    ap.add_argument("--quick", action="store_true",
                    help="a check that it runs: 20 s, 2 DSB folds, 1 seed")
    ap.add_argument("--strokes", action="store_true", help="the strokes protocol instead")
    ap.add_argument("--stroke-seconds", type=float, nargs="+", default=[20, 60])
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds = args.isbi_seconds = 0.5
        args.folds, args.seeds, args.stroke_seconds = 1, 1, [0.5]
    if args.quick:
        args.seconds = args.isbi_seconds = 20
        args.folds, args.seeds, args.groups = 2, 1, ["dsb"]
        args.stroke_seconds = [20]
    import torch

    from napari_unet.core.models.device import cpu_threads
    from napari_unet.core.models.speed import cpu_name

    print(f"{cpu_name()}, {cpu_threads(False)} torch threads, torch {torch.__version__}")
    if args.strokes:
        run_strokes(args)
    else:
        run_dense(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
