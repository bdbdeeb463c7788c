"""The interactive case: a few strokes on DSB 2018 nuclei, against a random forest.

    python benchmarks/quality/strokes.py [--seconds 60] [--checkpoints 20 40 60]

Strokes are derived from the ground truth the way a biologist paints (see ``strokes``):
on 10 images, a handful of nuclei filled, a stroke along the middle of a few others, and
background strokes between and around them, about 3 % of the pixels. napari-unet trains
on them with the ``annotation`` kind and is scored on the 30 other images at each
checkpoint of wall-clock time (and, at the end, once more with a higher foreground
threshold: strokes leave a band around each object unpainted and the network puts the
edge in its middle); a random forest on scikit-image's
``multiscale_basic_features`` (what ilastik, APOC and convpaint users get) is trained on
the same strokes and scored on the same images, in the same run, as is napari-unet
trained for the same time on the same 10 images fully annotated (what strokes can at best
approach).
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
from skimage.draw import line
from skimage.measure import label as connected

from napari_unet.core.decision import FOREGROUND_THRESHOLD
from napari_unet.core.metrics import foreground_iou, instance_scores
from napari_unet.core.predict.tiles import Predictor
from napari_unet.synthetic import background_strokes


def strokes(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sparse annotation of one instance image: 0 = none, 1 = background, 2 = nucleus."""
    ann = np.zeros(labels.shape, np.uint8)
    ids = [i for i in np.unique(labels) if i]
    rng.shuffle(ids)
    for i in ids[:4]:  # a few nuclei filled, staying inside the outline
        ann[ndi.binary_erosion(labels == i, iterations=1)] = 2
    for i in ids[4:10]:  # a brush stroke across a few others
        inside = ndi.binary_erosion(labels == i, iterations=2)
        ys, xs = np.nonzero(inside)
        if len(ys) < 4:
            continue
        a, b = np.argmin(xs + ys), np.argmax(xs + ys)
        rr, cc = line(ys[a], xs[a], ys[b], xs[b])
        s = np.zeros(labels.shape, bool)
        s[rr, cc] = True
        ann[ndi.binary_dilation(s, iterations=1) & inside] = 2
    # background strokes between and around the nuclei
    ann[background_strokes(rng, labels, count=10, reach=80, width=2, margin=4)] = 1
    return ann


def dabs_lines_edges(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A second stroke style, unlike :func:`strokes`: short dabs inside a few nuclei, long
    straight lines drawn across the image through several nuclei (painted only where they
    cross a nucleus) and one across the background between them,
    strokes hugging outlines (an arc just inside some nuclei, an arc of background just
    outside others) and a few background dabs. 0 = none, 1 = background, 2 = nucleus."""
    from skimage.draw import disk

    h, w = labels.shape
    ann = np.zeros(labels.shape, np.uint8)
    ids = [int(i) for i in np.unique(labels) if i]
    rng.shuffle(ids)
    same = ndi.minimum_filter(labels, 3) == ndi.maximum_filter(labels, 3)
    inner = (labels > 0) & same  # inside an object, one pixel off its outline
    objects = labels > 0
    free = ~ndi.binary_dilation(objects, iterations=1)  # background off every outline
    for i in ids[:6]:  # short dabs, radius 2
        ys, xs = np.nonzero(ndi.binary_erosion(labels == i, iterations=2))
        if len(ys):
            k = rng.integers(len(ys))
            rr, cc = disk((ys[k], xs[k]), 2.5, shape=labels.shape)
            dab = np.zeros(labels.shape, bool)
            dab[rr, cc] = True
            ann[dab & inner] = 2
    centres = [tuple(float(v.mean()) for v in np.nonzero(labels == i)) for i in ids]
    for n in range(4):  # long lines across the image through two objects' centres
        if len(centres) < 2:
            break
        a, b = rng.choice(len(centres), 2, replace=False)
        (ya, xa), (yb, xb) = centres[a], centres[b]
        d = max(abs(yb - ya), abs(xb - xa), 1.0)
        t = max(h, w) / d  # extend the line across the whole image
        rr, cc = line(int(np.clip(ya - t * (yb - ya), 0, h - 1)), int(np.clip(xa - t * (xb - xa), 0, w - 1)),
                      int(np.clip(ya + t * (yb - ya), 0, h - 1)), int(np.clip(xa + t * (xb - xa), 0, w - 1)))
        stroke = np.zeros(labels.shape, bool)
        stroke[rr, cc] = True
        stroke = ndi.binary_dilation(stroke)
        if n < 3:  # painted as nucleus where it crosses one
            ann[stroke & inner] = 2
        else:  # painted as background where it runs two pixels off every nucleus
            ann[stroke & ndi.binary_erosion(free, iterations=1)] = 1
    yy, xx = np.mgrid[0:h, 0:w]
    for n, i in enumerate(ids[6:16]):  # arcs along outlines, half inside, half outside
        obj = labels == i
        cy, cx = (float(v.mean()) for v in np.nonzero(obj))
        if n % 2 == 0:
            band = obj & ~ndi.binary_erosion(obj, iterations=2) & inner
            value = 2
        else:
            band = (ndi.binary_dilation(obj, iterations=3) & ~ndi.binary_dilation(obj, iterations=1)
                    & free)
            value = 1
        start = rng.uniform(-np.pi, np.pi)
        turn = (np.arctan2(yy - cy, xx - cx) - start) % (2 * np.pi)
        ann[band & (turn < np.pi)] = value
    far = ndi.binary_erosion(~objects, iterations=5)
    ys, xs = np.nonzero(far)
    for k in rng.integers(len(ys), size=8) if len(ys) else []:  # background dabs
        rr, cc = disk((ys[k], xs[k]), 4, shape=labels.shape)
        ann[rr, cc] = np.where(far[rr, cc], 1, ann[rr, cc])
    return ann


def forest(images, annotations, test, seed=0):
    from skimage.feature import multiscale_basic_features
    from sklearn.ensemble import RandomForestClassifier

    def feats(im):
        im = im.astype(np.float32)
        im = (im - im.min()) / max(float(np.ptp(im)), 1e-6)
        return multiscale_basic_features(im, sigma_min=1, sigma_max=16)

    t0 = time.perf_counter()
    X, y = [], []
    for im, ann in zip(images, annotations):
        f = feats(im)
        m = ann > 0
        X.append(f[m])
        y.append(ann[m])
    clf = RandomForestClassifier(n_estimators=100, max_depth=10, n_jobs=-1, random_state=seed)
    clf.fit(np.concatenate(X), np.concatenate(y))
    train_s = time.perf_counter() - t0
    pred = np.stack([(clf.predict(feats(im).reshape(-1, feats(im).shape[-1])) == 2)
                     .reshape(im.shape) for im in test])
    return pred.astype(np.uint8), train_s


def instances_of(fg: np.ndarray) -> np.ndarray:
    return np.stack([connected(f > 0) for f in fg])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--checkpoints", type=float, nargs="*", default=[20, 40, 60])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.9,
                    help="also score the final model with this foreground threshold")
    ap.add_argument("--iterations", type=int, default=None,
                    help="bound by iterations instead (checkpoints at thirds), for tuning")
    ap.add_argument("--start", choices=("pretrained", "scratch"), default="pretrained")
    ap.add_argument("--no-dense-reference", dest="dense_reference", action="store_false",
                    help="skip training on the same images fully annotated (the ceiling)")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds, args.checkpoints = 1.0, [0.5]
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    rng = np.random.default_rng(args.seed)
    train_idx = np.arange(0, 40, 4)  # 10 images spread over the set
    test_idx = np.setdiff1d(np.arange(40), train_idx)
    ann = np.stack([strokes(labels[i], rng) for i in train_idx])
    frac = float((ann > 0).mean())
    gt = labels[test_idx]

    rows = []
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print("(scikit-learn is not installed: no random forest in this run)")
    else:
        rf_fg, rf_s = forest(images[train_idx], ann, images[test_idx], args.seed)
        rf_inst = instances_of(rf_fg)
        rows.append(["random forest (multiscale features)", rf_s, foreground_iou(rf_fg, gt),
                     instance_scores(rf_inst, gt)["f1"]])

    from napari_unet.core.config import TrainOptions
    from napari_unet.core.train.plan import plan_training
    from napari_unet.core.train.trainer import Trainer

    seconds = None if args.iterations else args.seconds
    # napari-unet train --labels-kind annotation (the GUI's settings too)
    options = TrainOptions(seconds=seconds, iterations=args.iterations, seed=args.seed,
                           start_model="nuclei" if args.start == "pretrained" else "none")
    plan = plan_training(list(images[train_idx]), list(ann), options)
    trainer = Trainer(plan.bundle, plan.data, plan.config)
    marks = sorted(c for c in args.checkpoints if c <= args.seconds)
    if args.iterations:
        marks = [args.iterations // 3, 2 * args.iterations // 3]
    gen = trainer.fit()
    for progress in gen:
        now = progress.run_iteration if args.iterations else progress.elapsed
        if marks and now >= marks[0]:
            mark = marks.pop(0)
            pred = Predictor(trainer.bundle()).predict(images[test_idx], instances=True)
            rows.append([f"napari-unet after {mark:.0f} s ({progress.run_iteration} it)",
                         progress.elapsed, foreground_iou(pred.labels, gt),
                         instance_scores(pred.instances, gt)["f1"]])
    if args.dense_reference:  # the ceiling: the same 10 images with every pixel annotated
        dense = [(labels[i] > 0).astype(np.uint8) + 1 for i in train_idx]
        ref_plan = plan_training(list(images[train_idx]), dense,
                                 dataclasses.replace(options, labels_kind="semantic"))
        ref = Trainer(ref_plan.bundle, ref_plan.data, ref_plan.config)
        for _ in ref.fit():
            pass
        pred = Predictor(ref.bundle()).predict(images[test_idx], instances=True)
        rows.append([f"same 10 images fully annotated ({ref.run_iteration} it)",
                     ref.bundle().history[-1]["seconds"], foreground_iou(pred.labels, gt),
                     instance_scores(pred.instances, gt)["f1"]])
    for threshold in (FOREGROUND_THRESHOLD, args.threshold):
        pred = Predictor(trainer.bundle(), foreground_threshold=threshold).predict(
            images[test_idx], instances=True)
        how = f", threshold {threshold}"
        rows.append([f"napari-unet at the end ({trainer.run_iteration} it{how})",
                     progress.elapsed, foreground_iou(pred.labels, gt),
                     instance_scores(pred.instances, gt)["f1"]])
    print(table(f"sparse strokes on 10 DSB images ({frac:.1%} of pixels), scored on 30 others "
                f"(start: {args.start})",
                ["method", "train s", "fg IoU", "F1@0.5"], rows, [44, 8, 8, 8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
