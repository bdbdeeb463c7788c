"""Does object size explain the loss on other kinds of image? Predict them resized.

    python benchmarks/quality/object_size.py [--seconds 150] [--seeds 2] [--rescale off auto 0.5 0.33]
    python benchmarks/quality/object_size.py --folds-only

napari-unet trains as ``napari-unet train --labels-kind instance`` (command-line
defaults) on the 40 DSB 2018 fluorescence images, whose nuclei are small (median 104
pixels), and each trained model predicts the dense (360x360, median nucleus 1,700 pixels)
and dim (512x640, 1,240 pixels) fluorescence images of ``dsb2018/varied/`` as
``napari-unet predict --instances --rescale R`` does, for each ``R``: ``off`` (full
size), ``auto`` (shrunk when the objects look more than 1.5 times as large across as the
training images', until they look that large: :mod:`napari_unet.core.scale`), or a factor
applied to every image.
Every setting predicts with the same model, so the differences to ``off`` are paired:
the table gives mean +- sd over seeds of each score and of its difference to ``off``,
and the factors ``auto`` chose. No image scored here was used to train or to choose
the settings of :mod:`~napari_unet.core.scale`.

It first lists, for the 4 DSB folds of ``crossval.py`` (train on 30, score 10), the test
images that ``auto`` resizes for a model trained on the fold's other images (the size is
read from the images alone, so no training is needed); ``--folds-only`` stops there.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
from collections import defaultdict

import numpy as np
from _common import add_smoke, use_smoke_data
from crossval import DSB_FOLDS, VARIED_FLUO, dsb, fit, folds, predictor_of, varied

from napari_unet.core.models.speed import cpu_name


def _pm(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():6.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f}"


def fold_report(images: np.ndarray) -> None:
    """Which test images of each DSB fold ``auto`` resizes, and by how much."""
    from napari_unet.core.normalise import Normalisation
    from napari_unet.core.scale import factor_for, object_size, training_size

    norm = Normalisation()
    planes = np.stack([norm.normalise(i, norm.stats(i)) for i in images])
    for f, test in enumerate(folds(len(images), DSB_FOLDS)):
        trained = training_size([planes[np.setdiff1d(np.arange(len(images)), test)]])
        resized = {int(i): factor_for(object_size(planes[i]), trained) for i in test}
        resized = {i: round(v, 2) for i, v in resized.items() if v != 1.0}
        print(f"DSB fold {f}: training objects {trained:.1f} pixels across; test images "
              f"auto resizes: {resized or 'none'}")


def main(argv: list[str] | None = None) -> int:
    import torch

    from napari_unet.core.metrics import foreground_iou, instance_scores
    from napari_unet.core.models.device import cpu_threads

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--rescale", nargs="+", default=["off", "auto", "0.5", "0.33"])
    ap.add_argument("--folds-only", action="store_true",
                    help="only list the DSB fold images auto resizes")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds, args.seeds, args.rescale = 0.5, 1, ["off", "auto"]
    images, labels = dsb()
    fold_report(images)
    if args.folds_only:
        return 0
    if "off" not in args.rescale:
        args.rescale.insert(0, "off")
    torch.set_num_threads(cpu_threads(False))
    groups = {name: varied(size) for size, name in VARIED_FLUO.items()}
    scores = defaultdict(list)  # (group, rescale) -> [(iou, f1, ratio)] per seed
    chosen = defaultdict(list)  # group -> factors auto chose
    for seed in range(args.seeds):
        trainer = fit(images, labels, "instance", args.seconds, seed)
        print(f"{cpu_name()}: seed {seed}, {trainer.run_iteration} steps in "
              f"{args.seconds:g} s, training objects {trainer.object_size:.1f} pixels across "
              "(scale estimate)", flush=True)
        for rescale in args.rescale:
            predictor, popts = predictor_of(trainer, ("--rescale", rescale))
            for name, (stack, truth) in groups.items():
                rows = []
                for image, true in zip(stack, truth):
                    result = predictor.predict(image, instances=True, min_size=popts.min_size)
                    fg = result.labels > 0
                    rows.append((foreground_iou(fg, true > 0),
                                 instance_scores(result.instances, true)["f1"],
                                 fg.sum() / max((true > 0).sum(), 1)))
                    if rescale == "auto" and seed == 0:
                        chosen[name].append(result.factors[0])
                scores[name, rescale].append(np.mean(rows, 0))
    print(f"\n{args.seconds:g} s of training, {args.seeds} seeds: mean ± sd over seeds; "
          "Δ = paired difference to off (same model)")
    print(f"{'images':11s} {'rescale':>7s} {'fg IoU':>14s} {'Δ IoU':>15s} {'F1@0.5':>14s} "
          f"{'Δ F1':>15s} {'fg ratio':>14s}")
    for name in groups:
        base = np.asarray(scores[name, "off"])
        for rescale in args.rescale:
            s = np.asarray(scores[name, rescale])
            print(f"{name:11s} {rescale:>7s} {_pm(s[:, 0])} {_pm(s[:, 0] - base[:, 0]):>15s} "
                  f"{_pm(s[:, 1])} {_pm(s[:, 1] - base[:, 1]):>15s} {_pm(s[:, 2])}")
        if chosen[name]:
            f = np.asarray(chosen[name])
            print(f"{'':11s} auto chose factors {f.min():.2f} to {f.max():.2f} "
                  f"(median {np.median(f):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
