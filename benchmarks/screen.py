"""Screen one change of the training options against the defaults, fold by fold.

    python benchmarks/screen.py --change "--start-model nuclei" [--iterations 300]
                                [--seconds S] [--folds 0 1 2 3] [--seed 0]

Both arms train as ``napari-unet train --labels-kind instance`` on 30 of the 40 DSB 2018
fluorescence images (the 4 contiguous folds of ``crossval.py``) and are scored on the 10
others; the change is the only difference. With ``--iterations`` (the default) both arms
make the same number of steps, which is a fair comparison on a machine shared with other
work when the change does not alter the cost of a step; with ``--seconds`` they get the
same time (needs an idle machine). The arms alternate which goes first. The table gives
each fold and the paired difference (change - default) as mean +- sd over the folds: a
screen for what deserves the full protocol (``crossval.py``, several seeds, the plain
loop beside it), not a reason on its own to adopt a setting.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
from crossval import dsb, folds, nuclei_scores, train_project

METRICS = ("fg IoU", "F1@0.5", "fg ratio")


def run_arm(images, labels, test_images, budget: list[str], seed: int, change: list[str]):
    predict, iterations, _ = train_project(images, labels, "instance", None, seed,
                                           (*budget, *change))
    fg, inst = predict(test_images)
    return fg, inst, iterations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--change", required=True, help="train options of the changed arm")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--iterations", type=int, default=300)
    budget.add_argument("--seconds", type=float)
    ap.add_argument("--folds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    budget = (["--seconds", str(args.seconds)] if args.seconds
              else ["--iterations", str(args.iterations)])
    arms = {"default": [], "change": args.change.split()}
    images, labels = dsb()
    print(f"{platform.processor() or platform.machine()}, change: {args.change}, "
          f"budget: {' '.join(budget)}, seed {args.seed}", flush=True)
    scores: dict[str, list[dict]] = {arm: [] for arm in arms}
    t0 = time.perf_counter()
    for n, f in enumerate(args.folds):
        test = folds(len(images), 4)[f]
        train = np.setdiff1d(np.arange(len(images)), test)
        order = list(arms) if (n + args.seed) % 2 == 0 else list(arms)[::-1]
        for arm in order:
            fg, inst, its = run_arm(images[train], labels[train], images[test], budget,
                                    args.seed, arms[arm])
            s = nuclei_scores(fg, inst, labels[test])
            scores[arm].append(s)
            print(f"  fold {f} {arm:7s} {its:5d} steps  "
                  + "  ".join(f"{k} {s[k]:.3f}" for k in METRICS)
                  + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n{'':10s}" + "".join(f"{k:>18s}" for k in METRICS))
    for arm, rows in scores.items():
        print(f"{arm:10s}" + "".join(
            f"{np.mean([r[k] for r in rows]):>10.3f} ± {np.std([r[k] for r in rows]):.3f}"
            for k in METRICS))
    diffs = {k: [c[k] - d[k] for c, d in zip(scores["change"], scores["default"])]
             for k in METRICS}
    print(f"{'difference':10s}" + "".join(
        f"{np.mean(diffs[k]):>+10.3f} ± {np.std(diffs[k]):.3f}" for k in METRICS))


if __name__ == "__main__":
    main()
