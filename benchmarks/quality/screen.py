"""Screen one change of the training options against the defaults, fold by fold.

    python benchmarks/quality/screen.py --change "--start-model nuclei" [--iterations 300]
                                [--seconds S] [--folds 0 1 2 3] [--seed 0 | --seeds N]
                                [--predict-change=--tta ...]
                                [--group dsb | isbi | fluo-to-varied | varied-to-fluo]

Both arms train as ``napari-unet train`` does with the labels of the group and are
scored on images they did not see, the change being the only difference. ``--group``
(the settings of ``crossval.py``): ``dsb`` (the default) trains on 30 of the 40 DSB 2018
fluorescence images (``--labels-kind instance``, the 4 contiguous folds) and scores the
10 others; ``isbi`` trains on 20 of the 25 ISBI slices (``semantic``, 5 folds) and scores
the 5 others by pixel and Rand error; ``fluo-to-varied`` trains on the 40 DSB images and
scores the dense and the dim fluorescence images of ``dsb2018/varied/`` (``--folds`` is
ignored); ``varied-to-fluo`` trains on the dense (fold 0) and on the dim (fold 1)
fluorescence images of ``varied/``, whose nuclei are larger, and scores the 40 DSB images
(``--folds`` is ignored). Each ``--predict-change`` scores the model of
each arm again with other ``predict`` options (no second training). With
``--iterations`` (the default) both arms make the same number of steps, which is a fair
comparison on a machine shared with other work when the change does not alter the cost
of a step; with ``--seconds`` they get the same time (needs an idle machine). The arms
alternate which goes first. The table gives each fold and the paired difference
(change - default) as mean +- sd over the folds: a screen for what deserves the full protocol
(``crossval.py``, several seeds, the plain loop beside it), not a reason on its own to
adopt a setting.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import time
from collections import defaultdict

import numpy as np
from _common import add_smoke, use_smoke_data
from crossval import (
    DSB_FOLDS,
    ISBI_FOLDS,
    VARIED_FLUO,
    dsb,
    folds,
    isbi,
    membrane_scores,
    nuclei_scores,
    train_project,
    varied,
)

from napari_unet.core.models.speed import cpu_name

NUCLEI = ("fg IoU", "F1@0.5", "fg ratio")
MEMBRANES = ("pixel error", "Rand error", "fg ratio")


def cells(group: str, fold_numbers: list[int]):
    """(fold, training images, training labels, {test name: (images, labels)}) of a
    group, the kind of its labels and its metrics."""
    if group == "fluo-to-varied":
        images, labels = dsb()
        tests = {name: varied(size) for size, name in VARIED_FLUO.items()}
        return [(0, images, labels, tests)], "instance", NUCLEI
    if group == "varied-to-fluo":
        fluo = dsb()
        return [(f, *varied(size), {"DSB fluo": fluo})
                for f, size in enumerate(VARIED_FLUO)], "instance", NUCLEI
    (images, labels), k, kind, metrics = ((isbi(), ISBI_FOLDS, "semantic", MEMBRANES)
                                          if group == "isbi"
                                          else (dsb(), DSB_FOLDS, "instance", NUCLEI))
    splits = folds(len(images), k)
    return [(f, np.delete(images, splits[f], 0), np.delete(labels, splits[f], 0),
             {"": (images[splits[f]], labels[splits[f]])}) for f in fold_numbers], kind, metrics


def run_arm(images, labels, kind: str, tests: dict, budget: list[str], seed: int,
            change: list[str], predict_changes: dict[str, list[str]]):
    """Train one arm; its predictions of each test set with the default predict options
    (key ``(test, "")``) and with each of ``predict_changes``."""
    predict, iterations, _ = train_project(images, labels, kind, None, seed,
                                           (*budget, *change))
    out = {}
    for test, (test_images, _) in tests.items():
        out[test, ""] = predict(test_images)
        for name, options in predict_changes.items():
            out[test, name] = predict(test_images, tuple(options))
    return out, iterations


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--change", default=None,
                    help="train options of the changed arm (\"\": none, to screen only "
                         "--predict-change)")
    ap.add_argument("--predict-change", action="append", default=[],
                    help="predict options scored too, on the models of both arms "
                         "(repeat it for several)")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, default=300)
    budget.add_argument("--seconds", type=float)
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--seed", type=int, default=0, help="the seed (with --seeds 1)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 instead of --seed")
    ap.add_argument("--group", choices=("dsb", "isbi", "fluo-to-varied", "varied-to-fluo"),
                    default="dsb")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.iterations, args.seconds, args.folds, args.seeds = 2, None, [0], None
        if args.change is None:
            args.change = "--zoom 2"
    if args.change is None:
        ap.error("--change is required")
    budget = (["--seconds", str(args.seconds)] if args.seconds
              else ["--iterations", str(args.iterations)])
    change = args.change.split()
    train_arms = {"default": [], "change": change} if change else {"default": []}
    predict_changes = {"".join(c.split()).lstrip("-"): c.split() for c in args.predict_change}
    seeds = range(args.seeds) if args.seeds else [args.seed]
    if args.group == "isbi" and args.folds == [0, 1, 2, 3]:
        args.folds = list(range(ISBI_FOLDS))
    work, kind, metrics = cells(args.group, args.folds)
    print(f"{cpu_name()}, group {args.group}, change: {args.change!r}, predict change: "
          f"{args.predict_change!r}, budget: {' '.join(budget)}, seeds {list(seeds)}",
          flush=True)
    # rows: each trained arm, and each with the predict change ("default+predict", ...)
    scores: dict[str, list[dict]] = defaultdict(list)
    t0 = time.perf_counter()
    for seed in seeds:
        for n, (f, images, labels, tests) in enumerate(work):
            order = list(train_arms) if (n + seed) % 2 == 0 else list(train_arms)[::-1]
            for arm in order:
                found, its = run_arm(images, labels, kind, tests, budget, seed,
                                     train_arms[arm], predict_changes)
                for (test, name), (fg, inst) in found.items():
                    row = " ".join(filter(None, (test, arm + (f"+{name}" if name else ""))))
                    truth = tests[test][1]
                    s = (membrane_scores(fg, truth) if kind == "semantic"
                         else nuclei_scores(fg, inst, truth))
                    scores[row].append(s)
                    print(f"  seed {seed} fold {f} {row:24s} {its:5d} steps  "
                          + "  ".join(f"{k} {s[k]:.3f}" for k in metrics)
                          + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nmean ± sd over {len(seeds)} seed(s) x {len(work)} fold(s)")
    print(f"{'':32s}" + "".join(f"{k:>18s}" for k in metrics))
    for row, values in scores.items():
        print(f"{row:32s}" + "".join(
            f"{np.mean([r[k] for r in values]):>10.3f} ± {np.std([r[k] for r in values]):.3f}"
            for k in metrics))
    print("paired differences (same seed and fold):")
    for row, values in scores.items():
        test, _, arm = row.rpartition(" ")
        if arm == "default":
            continue
        base = " ".join(filter(None, (test, arm.split("+")[0] if "+" in arm else "default")))
        diffs = {k: [c[k] - d[k] for c, d in zip(values, scores[base])] for k in metrics}
        print(f"{row + ' - ' + base:32s}" + "".join(
            f"{np.mean(diffs[k]):>+10.3f} ± {np.std(diffs[k]):.3f}" for k in metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
