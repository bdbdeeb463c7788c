"""Touching nuclei: which training target splits them best (DSB 2018, held-out images).

    python benchmarks/quality/instances.py [--seconds 120] [--device cpu]

Trains on DSB images 0-29 for the same budget, in the same run, with
* ``semantic``: background / nucleus, objects = connected components;
* ``instance``: background / interior / boundary, objects = a watershed from the
  interiors (the default for instance masks);
* ``instance`` with the U-Net paper's border weights (w0 = 10, sigma = 5 px) on the
  background between nuclei (``napari-unet train --border-weights``);
and scores images 30-39: foreground IoU, instance F1 and average precision at IoU 0.5.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse

import numpy as np
import tifffile
from _common import DATA, add_smoke, need, table, use_smoke_data

from napari_unet.core.config import TrainOptions
from napari_unet.core.labels import to_annotations
from napari_unet.core.metrics import foreground_iou, instance_scores
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.plan import plan_training
from napari_unet.core.train.trainer import Trainer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds = 0.5
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    train_img, train_lab = images[:30], labels[:30]
    test_img, test_lab = images[30:], labels[30:]

    variants = [
        ("semantic, connected components", "semantic", (train_lab > 0).astype(np.uint8), False),
        ("instance, watershed (default)", "instance", train_lab, False),
        ("instance + border weights", "instance", train_lab, True),
    ]
    rows = []
    for name, kind, lab, weights in variants:
        options = TrainOptions(labels_kind=kind, seconds=args.seconds, device=args.device,
                               seed=args.seed, start_model="none", border_weights=weights)
        plan = plan_training([train_img], [to_annotations(lab, kind)], options,
                             objects=[train_lab])
        trainer = Trainer(plan.bundle, plan.data, plan.config)
        for _ in trainer.fit():
            pass
        out = Predictor(trainer.bundle(), device=args.device).predict(test_img, instances=True)
        scores = instance_scores(out.instances, test_lab)
        rows.append([name, trainer.run_iteration, foreground_iou(out.labels, test_lab),
                     scores["f1"], scores["ap"]])
    print(table(f"DSB 2018 touching nuclei: train images 0-29 for {args.seconds:.0f} s each "
                f"({args.device}), score 30-39",
                ["target", "iterations", "fg IoU", "F1@0.5", "AP@0.5"], rows,
                [32, 10, 8, 8, 8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
