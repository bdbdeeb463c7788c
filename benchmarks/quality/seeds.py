"""Where the objects of an instance model start: the watershed seeds, chosen on two DSB
folds and checked on the two others.

    python benchmarks/quality/seeds.py [--seconds 150] [--seeds 2] [--save DIR]
    python benchmarks/quality/seeds.py --load DIR        # score saved probabilities again
    python benchmarks/quality/seeds.py --cross-kind [--seeds 2]

napari-unet trains with the command line's defaults (``--labels-kind instance``) on each
of the 4 DSB folds of ``crossval.py`` for every seed and predicts the fold's 10 held-out
images once; ``--save DIR`` keeps their probabilities (``dsb_f{fold}_s{seed}.npz``).
Each way of choosing seeds then splits the same probabilities into objects: the most
likely foreground class being interior (``argmax``) or p(interior) >= p for each p of
``--grid``; everything else is as ``napari-unet predict --instances`` does it (foreground
threshold 0.5, watershed over p(boundary) - p(interior), seeds under ``--min-size`` / 2
and objects under ``--min-size`` pixels dropped). The threshold with the best mean
F1@0.5 on folds 0-1 is chosen there; the table gives its paired difference to ``argmax``
on folds 2-3, which it was not chosen on (mean ± sd over folds x seeds).

``--cross-kind``: train on the 40 DSB fluorescence images instead, for every seed, and
score every rule on the same probabilities of the dense (360x360) and dim (512x640)
fluorescence images of ``dsb2018/varied/`` (kinds no rule was chosen on); bright-field
is left out, as a fluorescence model inverts it whatever the seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import time

import numpy as np
from _common import add_smoke, use_smoke_data
from crossval import DSB_FOLDS, VARIED, cli_args, dsb, fit, folds, mean_sd, predictor_of, varied

CHOOSE, CHECK = (0, 1), (2, 3)


def trained(images, labels, seconds: float, seed: int):
    """A predictor of the model ``napari-unet train --labels-kind instance`` trains, and
    its steps."""
    import torch

    from napari_unet.core.models.device import cpu_threads

    torch.set_num_threads(cpu_threads(False))
    trainer = fit(images, labels, "instance", seconds, seed)
    return predictor_of(trainer)[0], trainer.run_iteration


def train_and_predict(images, labels, seconds: float, n_seeds: int, save: Path | None):
    """{(fold, seed): probabilities of the fold's held-out images}."""
    out, t0 = {}, time.perf_counter()
    for f, test in enumerate(folds(len(images), DSB_FOLDS)):
        train = np.setdiff1d(np.arange(len(images)), test)
        for seed in range(n_seeds):
            predictor, steps = trained(images[train], labels[train], seconds, seed)
            probs = predictor.predict(images[test], probabilities=True).probabilities
            out[f, seed] = probs
            if save is not None:
                save.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(save / f"dsb_f{f}_s{seed}.npz",
                                    probs=probs.astype(np.float16), test=test, its=steps)
            print(f"  fold {f} seed {seed}: {steps} steps, done at "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
    return out


def cross_kind(args, min_size: int) -> None:
    """Train on all DSB fluorescence, score each rule on dense and dim fluorescence."""
    from napari_unet.core.metrics import instance_scores

    images, labels = dsb()
    groups = {g: varied(g) for g in ("360x360", "512x640")}
    rules = [None, *args.grid]
    f1 = {(g, r): [] for g in groups for r in rules}
    t0 = time.perf_counter()
    for seed in range(args.seeds):
        predictor, steps = trained(images, labels, args.seconds, seed)
        for g, (stack, truth) in groups.items():
            probs = predictor.predict(stack, probabilities=True).probabilities
            for r in rules:
                inst = np.stack([objects(p, r, min_size) for p in probs])
                f1[g, r].append(instance_scores(inst, truth)["f1"])
        print(f"  seed {seed}: {steps} steps, done at {time.perf_counter() - t0:.0f} s",
              flush=True)
    print(f"\nF1@0.5 trained on DSB fluorescence, mean ± sd over {args.seeds} seeds; paired "
          "difference to argmax")
    for g in groups:
        for r in rules:
            name = "argmax" if r is None else f"p(interior) >= {r:g}"
            diff = np.subtract(f1[g, r], f1[g, None])
            print(f"{VARIED[g]:12} {name:22} {mean_sd(f1[g, r]):>15}   {mean_sd(diff)}")


def load(folder: Path) -> dict:
    out = {}
    for path in sorted(folder.glob("dsb_f*_s*.npz")):
        f, s = path.stem.split("_")[1:]
        out[int(f[1:]), int(s[1:])] = np.load(path)["probs"].astype(np.float32)
    if not out:
        raise SystemExit(f"no dsb_f*_s*.npz in {folder}")
    return out


def objects(probs: np.ndarray, seed_probability: float | None, min_size: int) -> np.ndarray:
    """Objects of one image's probabilities (3, H, W); ``None``: seeds where interior is
    the most likely foreground class."""
    from skimage.measure import label as connected
    from skimage.segmentation import watershed

    from napari_unet.core.decision import decide, interior_seeds
    from napari_unet.core.predict.tiles import drop_small

    classes = decide(probs)
    if seed_probability is None:
        sure = classes == 1
    else:
        sure = interior_seeds(probs[1], classes, seed_probability)
    seeds = drop_small(connected(sure), max(1, min_size // 2))
    out = watershed(probs[2] - probs[1], markers=seeds, mask=classes > 0)
    return drop_small(out, min_size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--seeds", type=int, default=2, help="seeds 0..N-1")
    ap.add_argument("--grid", type=float, nargs="+", default=[0.5, 0.7, 0.8, 0.85, 0.9, 0.95])
    ap.add_argument("--min-size", type=int, default=None, help="default: the CLI's")
    ap.add_argument("--save", type=Path, default=None, help="keep the probabilities here")
    ap.add_argument("--load", type=Path, default=None, help="saved probabilities: no training")
    ap.add_argument("--cross-kind", action="store_true",
                    help="train on DSB fluorescence, score dense and dim fluorescence")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds, args.seeds, args.grid = 0.5, 1, [0.8]
    from napari_unet.core.metrics import instance_scores
    from napari_unet.core.models.speed import cpu_name

    min_size = args.min_size or cli_args("predict", "--model", "m", "--image", "i",
                                         "--out", "o").min_size
    if args.cross_kind:
        print(f"{cpu_name()}, {args.seconds:g} s per model")
        cross_kind(args, min_size)
        return 0
    images, labels = dsb()
    tests = folds(len(images), DSB_FOLDS)
    if args.load is not None:
        probs = load(args.load)
    else:
        print(f"{cpu_name()}, {args.seconds:g} s per model")
        probs = train_and_predict(images, labels, args.seconds, args.seeds, args.save)
    keys = sorted(probs)
    rules = [None, *args.grid]
    f1 = {rule: {k: instance_scores(np.stack([objects(p, rule, min_size) for p in probs[k]]),
                                    labels[tests[k[0]]])["f1"] for k in keys}
          for rule in rules}
    name = {rule: "argmax" if rule is None else f"p(interior) >= {rule:g}" for rule in rules}
    choose = [k for k in keys if k[0] in CHOOSE]
    check = [k for k in keys if k[0] in CHECK]
    print(f"\nF1@0.5, mean ± sd over folds x seeds ({len(keys)} models)")
    print(f"{'seeds':22} {'folds 0-1':>15} {'folds 2-3':>15}   paired diff. to argmax on 2-3")
    for rule in rules:
        diff = [f1[rule][k] - f1[None][k] for k in check]
        print(f"{name[rule]:22} {mean_sd([f1[rule][k] for k in choose]):>15} "
              f"{mean_sd([f1[rule][k] for k in check]):>15}   {mean_sd(diff)}")
    best = max(args.grid, key=lambda r: np.mean([f1[r][k] for k in choose]))
    diff = [f1[best][k] - f1[None][k] for k in check]
    print(f"\nchosen on folds 0-1: {name[best]}; on folds 2-3 F1@0.5 {mean_sd(diff)} "
          "against argmax")
    return 0


if __name__ == "__main__":
    sys.exit(main())
