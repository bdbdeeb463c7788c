"""The correction round: what accepting corrections teaches the model.

    python benchmarks/quality/corrections.py [--seconds 30 | --iterations N] [--more 20 |
        --more-iterations M] [--corrected 3]

The loop of the plugin on DSB 2018 nuclei: strokes on 10 images (as in ``strokes.py``),
train for ``--seconds`` from the shipped nuclei model, predict those images, then a
simulated user corrects the predictions of the ``--corrected`` worst ones as in the
plugin: erases every predicted object that is not a nucleus (less than 20 % of it on the
ground truth) and paints every nucleus the model missed (less than half of it predicted).
The corrections are accepted in three ways and training continues from the same weights
for the same number of iterations in each (``--more-iterations``, or what fits in
``--more`` seconds at the speed of the first run; on a busy machine iteration budgets
compare like with like):

* ``whole slice``: every unannotated pixel of a corrected image takes the corrected
  prediction, the whole image weighs 3x, patches are drawn as before (what *Accept
  corrections* used to do);
* ``edits, 3x``: only the pixels the user changed become annotation, they weigh 3x
  and centre a share of the patches (``core.sampling.FOCUS_SHARE``; the plugin's *Accept
  corrections* now), here with a share of 0.25 and 0.1;
* ``edits, 1x``: the same annotation without the extra weight (nor the focus).

For each: the fraction of the corrected pixels whose prediction after retraining is the
user's label, how many erased objects came back (more than half of them predicted
foreground again), nucleus pixels wrongly annotated as background by the acceptance, and
the foreground IoU on the corrected images and on the 30 images never trained on.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import dataclasses
import time

import numpy as np
import tifffile
from _common import DATA, add_smoke, need, table, use_smoke_data
from scipy import ndimage as ndi
from strokes import strokes

from napari_unet.core.config import TrainOptions
from napari_unet.core.corrections import accept_edits
from napari_unet.core.metrics import foreground_iou
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train import sampling as sampling_module
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.plan import new_bundle
from napari_unet.core.train.trainer import Trainer

CORRECTED_WEIGHT = 3.0


def correct(prediction: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """A user's corrections of one predicted image (0 / 1): erase the false objects, paint
    the missed nuclei. Returns the edited prediction and the masks of the erased objects."""
    edited = prediction.copy()
    objects, n = ndi.label(prediction > 0)
    erased = []
    for k in range(1, n + 1):
        obj = objects == k
        if np.mean(truth[obj] > 0) < 0.2:
            edited[obj] = 0
            erased.append(obj)
    for i in np.unique(truth):
        nucleus = truth == i
        if i and np.mean(prediction[nucleus] > 0) < 0.5:
            edited[nucleus] = 1
    return edited, erased


def train(bundle, images, annotations, weights, cfg):
    data = TrainingData.from_annotations(images, annotations, weights=weights)
    trainer = Trainer(bundle, data, cfg)
    for _ in trainer.fit():
        pass
    return trainer.bundle()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30, help="training on the strokes")
    ap.add_argument("--more", type=float, default=20, help="training after the corrections")
    ap.add_argument("--iterations", type=int, help="training on the strokes, instead of --seconds")
    ap.add_argument("--more-iterations", type=int, help="instead of --more")
    ap.add_argument("--corrected", type=int, default=3, help="images corrected and accepted")
    ap.add_argument("--seed", type=int, default=0)
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.iterations, args.more_iterations = 2, 1
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    rng = np.random.default_rng(args.seed)
    train_idx = np.arange(0, 40, 4)
    test_idx = np.setdiff1d(np.arange(40), train_idx)
    ann = [strokes(labels[i], rng) for i in train_idx]
    options = TrainOptions(seed=args.seed)  # painted strokes, as in the GUI
    base = options.train_config()

    t0 = time.perf_counter()
    first = (dict(seconds=None, iterations=args.iterations) if args.iterations
             else dict(seconds=args.seconds))
    start = train(new_bundle(options, 2), list(images[train_idx]), ann, None,
                  dataclasses.replace(base, **first))
    seconds = time.perf_counter() - t0
    more = args.more_iterations or max(1, int(round(start.iterations / seconds * args.more)))
    cfg = dataclasses.replace(base, seconds=None, iterations=more)

    made = Predictor(start).predict(images[train_idx]).labels
    errors = [np.count_nonzero((p > 0) != (labels[i] > 0)) for p, i in zip(made, train_idx)]
    worst = [int(k) for k in np.argsort(errors)[::-1][: args.corrected]]
    edits = {k: correct(made[k], labels[train_idx[k]]) for k in worst}
    changed = {k: made[k] != edits[k][0] for k in worst}
    n_changed = sum(int(m.sum()) for m in changed.values())
    n_erased = sum(len(e[1]) for e in edits.values())

    def accepted(policy: str):
        annotations, weights = [], []
        for k, a in enumerate(ann):
            if k not in edits:
                annotations.append(a)
                weights.append(None)
                continue
            where, values, edited = accept_edits(a, made[k], edits[k][0],
                                                 whole=policy == "whole slice")
            out = a.copy()
            out[where] = values
            annotations.append(out)
            if policy == "whole slice":
                weights.append(np.full(a.shape, CORRECTED_WEIGHT, np.float32))
            elif policy == "edits, 3x":
                weights.append(np.where(edited, CORRECTED_WEIGHT, 1).astype(np.float32))
            else:
                weights.append(None)
        return annotations, weights

    def scores(bundle, annotations):
        pred = Predictor(bundle).predict(images[train_idx[worst]]).labels
        test = Predictor(bundle).predict(images[test_idx]).labels
        kept = np.mean(np.concatenate([
            (p == edits[k][0])[changed[k]] for p, k in zip(pred, worst)]))
        back = sum(np.mean(p[obj] > 0) > 0.5
                   for p, k in zip(pred, worst) for obj in edits[k][1])
        wrong_bg = sum(int(np.count_nonzero((annotations[k] == 1) & (labels[train_idx[k]] > 0)))
                       for k in worst)
        return [f"{kept:.3f}", f"{back} of {n_erased}", f"{wrong_bg:,}",
                foreground_iou(pred, labels[train_idx[worst]]),
                foreground_iou(test, labels[test_idx])]

    rows = [[f"strokes, {start.iterations} it, {seconds:.0f} s", "-", *scores(start, ann)]]
    focus_share = sampling_module.FOCUS_SHARE
    try:
        for policy, share in (("whole slice", 0.0), ("edits, 3x", 0.25), ("edits, 3x", 0.1),
                              ("edits, 1x", 0.0)):
            annotations, weights = accepted(policy)
            sampling_module.FOCUS_SHARE = share
            bundle = train(start, list(images[train_idx]), annotations, weights, cfg)
            label = policy if policy != "edits, 3x" else f"{policy}, focus {share:g}"
            rows.append([label, f"+{more} it", *scores(bundle, annotations)])
    finally:  # the module's own value again
        sampling_module.FOCUS_SHARE = focus_share
    print(table(
        f"correction round on DSB 2018: strokes on 10 images, {args.corrected} corrected "
        f"({n_changed:,} px changed, {n_erased} objects erased), IoU on the corrected images "
        "and on 30 others",
        ["accepted", "training", "kept", "erased back", "nuc as bg", "IoU corr", "IoU test"],
        rows, [28, 9, 7, 12, 10, 9, 9]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
