"""Screen one change of the training options against the defaults, fold by fold.

    python benchmarks/screen.py --change "--start-model nuclei" [--iterations 300]
                                [--seconds S] [--folds 0 1 2 3] [--seed 0 | --seeds N]
                                [--predict-change=--tta ...]

Both arms train as ``napari-unet train --labels-kind instance`` on 30 of the 40 DSB 2018
fluorescence images (the 4 contiguous folds of ``crossval.py``) and are scored on the 10
others; the change is the only difference. Each ``--predict-change`` scores the model of
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

import argparse
import time
from collections import defaultdict

import numpy as np
from crossval import dsb, folds, nuclei_scores, train_project

from napari_unet.core.speed import cpu_name

METRICS = ("fg IoU", "F1@0.5", "fg ratio")


def run_arm(images, labels, test_images, budget: list[str], seed: int, change: list[str],
            predict_changes: dict[str, list[str]]):
    """Train one arm; its predictions of ``test_images`` with the default predict
    options (key ``""``) and with each of ``predict_changes``."""
    predict, iterations, _ = train_project(images, labels, "instance", None, seed,
                                           (*budget, *change))
    out = {"": predict(test_images)}
    for name, options in predict_changes.items():
        out[name] = predict(test_images, tuple(options))
    return out, iterations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--change", required=True,
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
    args = ap.parse_args()
    budget = (["--seconds", str(args.seconds)] if args.seconds
              else ["--iterations", str(args.iterations)])
    change = args.change.split()
    train_arms = {"default": [], "change": change} if change else {"default": []}
    predict_changes = {"".join(c.split()).lstrip("-"): c.split() for c in args.predict_change}
    seeds = range(args.seeds) if args.seeds else [args.seed]
    images, labels = dsb()
    print(f"{cpu_name()}, change: {args.change!r}, predict change: {args.predict_change!r}, "
          f"budget: {' '.join(budget)}, seeds {list(seeds)}", flush=True)
    # rows: each trained arm, and each with the predict change ("default+predict", ...)
    scores: dict[str, list[dict]] = defaultdict(list)
    t0 = time.perf_counter()
    for seed in seeds:
        for n, f in enumerate(args.folds):
            test = folds(len(images), 4)[f]
            train = np.setdiff1d(np.arange(len(images)), test)
            order = list(train_arms) if (n + seed) % 2 == 0 else list(train_arms)[::-1]
            for arm in order:
                found, its = run_arm(images[train], labels[train], images[test], budget, seed,
                                     train_arms[arm], predict_changes)
                for name, (fg, inst) in found.items():
                    row = arm + (f"+{name}" if name else "")
                    s = nuclei_scores(fg, inst, labels[test])
                    scores[row].append(s)
                    print(f"  seed {seed} fold {f} {row:24s} {its:5d} steps  "
                          + "  ".join(f"{k} {s[k]:.3f}" for k in METRICS)
                          + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\nmean ± sd over {len(seeds)} seed(s) x {len(args.folds)} folds")
    print(f"{'':32s}" + "".join(f"{k:>18s}" for k in METRICS))
    for row, values in scores.items():
        print(f"{row:32s}" + "".join(
            f"{np.mean([r[k] for r in values]):>10.3f} ± {np.std([r[k] for r in values]):.3f}"
            for k in METRICS))
    print("paired differences (same seed and fold):")
    for row, values in scores.items():
        if row == "default":
            continue
        base = row.split("+")[0] if "+" in row else "default"
        diffs = {k: [c[k] - d[k] for c, d in zip(values, scores[base])] for k in METRICS}
        print(f"{row + ' - ' + base:32s}" + "".join(
            f"{np.mean(diffs[k]):>+10.3f} ± {np.std(diffs[k]):.3f}" for k in METRICS))


if __name__ == "__main__":
    main()
