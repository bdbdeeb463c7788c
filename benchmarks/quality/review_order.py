"""Objects to review: which per-object confidence lists the wrong objects first.

    python benchmarks/quality/review_order.py [--seconds 45] [--smoke]

On DSB 2018 nuclei, in two folds (train on images 0-19, review 20-39, and the reverse),
napari-unet trains for ``--seconds`` in two ways a user meets: from biologist-like
strokes (``benchmarks/strokes.py``: two classes, objects = connected regions) and from
the instance masks (background / interior / boundary, objects from the watershed of the
interiors). It predicts the held-out images with objects, and each measure of
``core.predict.confidence.CONFIDENCE`` orders their objects, least certain first. An
object is *wrong* when no true nucleus overlaps it with IoU > 0.5 (false, merged, cut or
badly outlined); *merged* when it holds more than half of two true nuclei or more.
The table gives, for the first 10 objects of the whole held-out stack (what the Correct
step lists) and the first 10 of each image, the fraction that is wrong (and merged),
against the same fraction over all objects (what a random order finds on average).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import DATA, need, table  # noqa: E402


def object_truth(pred: np.ndarray, truth: np.ndarray) -> dict[int, tuple[bool, bool]]:
    """{predicted id: (wrong, merged)} of one image."""
    out = {}
    area_t = np.bincount(truth.ravel(), minlength=int(truth.max()) + 1)
    for i in np.unique(pred[pred > 0]):
        obj = pred == i
        ids, inter = np.unique(truth[obj], return_counts=True)
        inter, ids = inter[ids > 0], ids[ids > 0]
        iou = inter / (obj.sum() + area_t[ids] - inter) if ids.size else np.zeros(0)
        wrong = not (iou > 0.5).any()
        merged = int((inter / np.maximum(area_t[ids], 1) > 0.5).sum()) >= 2
        out[int(i)] = (wrong, merged)
    return out


def sizes(instances: np.ndarray) -> dict[int, float]:
    """{id: size in pixels}: the order 'smallest first'."""
    counts = np.bincount(instances.ravel())
    return {int(i): float(counts[i]) for i in np.nonzero(counts)[0] if i > 0}


def train(images, labels, kind: str, seconds: float, seed: int):
    from crossval import fit, predictor_of
    from strokes import strokes

    if kind == "strokes":
        rng = np.random.default_rng(seed)
        annotations = np.stack([strokes(t, rng) for t in labels])
        trainer = fit(images, annotations, "annotation", seconds, seed)
    else:
        trainer = fit(images, labels, "instance", seconds, seed)
    return predictor_of(trainer)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=45.0)
    ap.add_argument("--instance-seconds", type=float, default=None,
                    help="training of the instance model (default: --seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="tiny run: 4 images, 2 s of training")
    ap.add_argument("--check", action="store_true",
                    help="train on the 40 DSB images, review the dense fluorescence images "
                         "of dsb2018/varied/360x360 (a kind no measure was chosen on)")
    args = ap.parse_args(argv)
    import tifffile
    import torch

    from napari_unet.core.predict.confidence import CONFIDENCE, object_confidence

    torch.set_num_threads(2)
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    n = len(images)
    if args.smoke:
        images, labels, n, args.seconds, args.instance_seconds = (
            images[:4], labels[:4], 4, 2.0, 2.0)
    halves = [np.arange(n // 2), np.arange(n // 2, n)]
    runs = [(images, labels, halves[0], images, labels, halves[1]),
            (images, labels, halves[1], images, labels, halves[0])]
    if args.check:
        other = need(DATA / "dsb2018" / "varied")
        v_img = tifffile.imread(other / "360x360_image.tif")
        v_lab = tifffile.imread(other / "360x360_labels.tif")
        runs = [(images, labels, np.arange(n), v_img, v_lab, np.arange(len(v_img)))]
    rows, t0 = [], time.perf_counter()
    for kind in ("strokes", "instance"):
        # (image, confidence, wrong, merged); "smallest first" is the baseline to beat
        scored = {how: [] for how in (*CONFIDENCE, "smallest first")}
        for fold, (tr_img, tr_lab, tr, te_img, te_lab, te) in enumerate(runs):
            seconds = args.seconds if kind == "strokes" or args.instance_seconds is None else (
                args.instance_seconds)
            predictor = train(tr_img[tr], tr_lab[tr], kind, seconds, args.seed + fold)
            result = predictor.predict(te_img[te], probabilities=True, instances=True)
            for k, z in enumerate(te):
                truth = object_truth(result.instances[k], te_lab[z])
                for how in scored:
                    conf = object_confidence(result.instances[k], result.probabilities[k],
                                             how=how) if how in CONFIDENCE else sizes(
                                                 result.instances[k])
                    scored[how] += [(fold * n + int(z), conf[i], *truth[i]) for i in conf]
        for how, items in scored.items():
            items = np.array(items, dtype=float)
            if not len(items):
                rows.append([f"{kind}: {how}", 0, "no object", "", "", "", "", ""])
                continue
            base_w, base_m = items[:, 2].mean(), items[:, 3].mean()
            per_image = []
            for key in np.unique(items[:, 0]):
                mine = items[items[:, 0] == key]
                per_image.append(mine[np.argsort(mine[:, 1], kind="stable")][:10, 2:].mean(0))
            per_image = np.mean(per_image, axis=0)
            worst = []
            for fold in range(len(runs)):  # the first 10 of each held-out stack
                mine = items[(items[:, 0] >= fold * n) & (items[:, 0] < (fold + 1) * n)]
                worst.append(mine[np.argsort(mine[:, 1], kind="stable")][:10, 2:].mean(0))
            worst = np.mean(worst, axis=0)
            rows.append([f"{kind}: {how}", int(len(items)), float(base_w), float(worst[0]),
                         float(per_image[0]), float(base_m), float(worst[1]),
                         float(per_image[1])])
    cpu = _cpu()
    print(table(  # noqa: T201
        "Wrong (and merged) objects among the least certain first, "
        f"{'dense DSB fluorescence (varied/360x360)' if args.check else 'DSB held-out halves'}, "
        f"{args.seconds:g} s (instance model {args.instance_seconds or args.seconds:g} s) "
        f"of training per fold, seed {args.seed}; {cpu}, shared with other "
        f"work; {time.perf_counter() - t0:.0f} s in all",
        ["model: confidence", "objects", "wrong all", "wrong 10/stack", "wrong 10/image",
         "merged all", "merged 10/stk", "merged 10/img"], rows,
        [24, 8, 10, 14, 14, 10, 13, 13]))
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{__import__('os').cpu_count()}"
    except OSError:
        pass
    return "CPU unknown"


if __name__ == "__main__":
    sys.exit(main())
