"""The correction round: how much accepted corrections should weigh in the loss.

    python benchmarks/corrections.py [--seconds 30] [--corrected 3] [--weights 1 3]

The loop of the plugin on DSB 2018 nuclei: strokes on 10 images (as in ``sparse.py``),
train for ``--seconds`` from the shipped nuclei model, then correct the predictions of a
few of those images (here: replace them by the ground truth, which is what a corrected and
accepted prediction becomes: every pixel annotated) and continue training for the same
time, once for each loss weight of the corrected images (the plugin's *Accept
corrections* uses 3). Every arm continues from the same weights; all are scored on the
30 other images.
"""

from __future__ import annotations

import argparse

import numpy as np
import tifffile
from _common import DATA, need, table
from sparse import strokes

from napari_unet.core.config import TrainOptions
from napari_unet.core.data import TrainingData
from napari_unet.core.metrics import foreground_iou, instance_scores
from napari_unet.core.plan import new_bundle
from napari_unet.core.predict import Predictor
from napari_unet.core.train import Trainer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--corrected", type=int, default=3, help="images corrected and accepted")
    ap.add_argument("--weights", type=float, nargs="+", default=[1.0, 3.0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    rng = np.random.default_rng(args.seed)
    train_idx = np.arange(0, 40, 4)
    test_idx = np.setdiff1d(np.arange(40), train_idx)
    ann = [strokes(labels[i], rng) for i in train_idx]
    gt = labels[test_idx]
    options = TrainOptions(seconds=args.seconds, seed=args.seed)
    cfg = options.train_config()

    def score(bundle):
        pred = Predictor(bundle).predict(images[test_idx], instances=True)
        return foreground_iou(pred.labels, gt), instance_scores(pred.instances, gt)["f1"]

    data = TrainingData.from_annotations(list(images[train_idx]), ann)
    first = Trainer(new_bundle(options, data.n_classes), data, cfg)
    for _ in first.fit():
        pass
    start = first.bundle()
    rows = [[f"strokes, {args.seconds:.0f} s", "-", *score(start)]]

    # The images whose predictions were worst get corrected first, as a user would.
    pred = Predictor(start).predict(images[train_idx]).labels
    errors = [np.count_nonzero((p > 0) != (labels[i] > 0)) for p, i in zip(pred, train_idx)]
    worst = list(np.argsort(errors)[::-1][: args.corrected])
    corrected = [(labels[i] > 0).astype(np.uint8) + 1 if k in worst else a
                 for k, (i, a) in enumerate(zip(train_idx, ann))]
    for weight in args.weights:
        weights = [np.full(a.shape, weight, np.float32) if k in worst else None
                   for k, a in enumerate(corrected)]
        data = TrainingData.from_annotations(list(images[train_idx]), corrected,
                                             weights=weights)
        more = Trainer(start, data, cfg)
        for _ in more.fit():
            pass
        rows.append([f"+ {args.corrected} corrected images, {args.seconds:.0f} s more",
                     f"{weight:g}", *score(more.bundle())])
    print(table("correction round on DSB 2018 (strokes on 10 images, scored on 30 others)",
                ["", "weight", "fg IoU", "F1@0.5"], rows, [44, 7, 8, 8]))


if __name__ == "__main__":
    main()
