"""Where the pixel error on the ISBI membranes lies, and how it moves with training time.

    python benchmarks/quality/membrane_errors.py [--folds 2 4] [--seconds 180 540] [--seed 0]

For each fold of ``crossval.py`` (20 ISBI slices to train on, 5 held out) and each budget
of ``--seconds``, napari-unet trains as ``napari-unet train --labels-kind semantic
--seconds S`` does and predicts the held-out slices as ``napari-unet predict`` does. The
table splits each pixel error into bands of distance d (in pixels) to the nearest pixel
of the other class in the annotation, on the membrane side and on the interior side
(1 <= d < 2: the pixel touches the other class): the share of pixels in the band, the
error that the band adds to the pixel error, and the error rate inside it. Error at
1 <= d < 2 is where the annotation's outline falls, not a missing or an invented
membrane.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import time

import numpy as np
from _common import add_smoke, use_smoke_data
from crossval import ISBI_FOLDS, fit, folds, isbi, predictor_of
from scipy import ndimage as ndi

from napari_unet.core.models.speed import cpu_name

BANDS = ((1, 2), (2, 3), (3, 6), (6, None))  # [lo, hi) in pixels


def edge_distance(membrane: np.ndarray) -> np.ndarray:
    """Per pixel of a (Z, Y, X) mask, its distance to the nearest pixel of the other
    class (1 = touching it), per slice."""
    return np.stack([np.where(m, ndi.distance_transform_edt(m), ndi.distance_transform_edt(~m))
                     for m in membrane])


def bands(wrong: np.ndarray, membrane: np.ndarray,
          distance: np.ndarray) -> list[tuple[str, float, float, float]]:
    """(band, share of pixels, error added, error rate) for each side and band, given
    ``edge_distance(membrane)``."""
    rows = []
    for side, mask in (("membrane", membrane), ("interior", ~membrane)):
        for lo, hi in BANDS:
            inside = mask & (distance >= lo)
            if hi is not None:
                inside &= distance < hi
            name = f"{side}, d >= {lo}" if hi is None else f"{side}, {lo} <= d < {hi}"
            share = inside.mean()
            rows.append((name, share, (wrong & inside).mean(),
                         wrong[inside].mean() if inside.any() else float("nan")))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folds", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--seconds", type=float, nargs="+", default=[180.0, 540.0])
    ap.add_argument("--seed", type=int, default=0)
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.folds, args.seconds = [0], [0.5]

    import torch

    from napari_unet.core.models.device import cpu_threads

    torch.set_num_threads(cpu_threads(False))
    print(f"{cpu_name()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    images, labels = isbi()
    tests = folds(len(images), ISBI_FOLDS)
    for fold in args.folds:
        test = tests[fold]
        train = np.setdiff1d(np.arange(len(images)), test)
        membrane = labels[test] > 0
        distance = edge_distance(membrane)  # the same for every budget
        for seconds in args.seconds:
            start = time.perf_counter()
            trainer = fit(images[train], labels[train], "semantic", seconds, args.seed)
            predictor, _ = predictor_of(trainer)
            wrong = (predictor.predict(images[test]).labels > 0) != membrane
            print(f"\nfold {fold} (slices {test[0]}-{test[-1]}), {seconds:.0f} s, "
                  f"{trainer.run_iteration} steps, pixel error {wrong.mean():.4f} "
                  f"(run took {time.perf_counter() - start:.0f} s)")
            print(f"{'distance to the edge':22s} {'pixels':>7s} {'error added':>12s} "
                  f"{'error rate':>11s}")
            for name, share, added, rate in bands(wrong, membrane, distance):
                print(f"{name:22s} {share:7.3f} {added:12.4f} {rate:11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
