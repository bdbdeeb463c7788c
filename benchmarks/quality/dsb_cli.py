"""The command line on real nuclei: train on DSB 2018 images, score the others.

    python benchmarks/quality/dsb_cli.py [--seconds 150] [--train 30]

Runs exactly the README's commands (``napari-unet train`` then ``predict``) on
../shared/data/dsb2018 and prints foreground IoU and instance F1 at IoU 0.5 on the held-out
images, with a plain-threshold baseline (Otsu) measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import subprocess
import tempfile
import time

import numpy as np
import tifffile
from _common import DATA, add_smoke, need, use_smoke_data
from skimage.filters import threshold_otsu
from skimage.measure import label as connected

CLI = [sys.executable, "-m", "napari_unet.cli"]


def f1_at_05(pred: np.ndarray, gt: np.ndarray) -> float:
    tp = fp = fn = 0
    for p, g in zip(pred, gt):
        pi, gi = np.unique(p)[1:], np.unique(g)[1:]
        if not len(pi) or not len(gi):
            fp, fn = fp + len(pi), fn + len(gi)
            continue
        inter = np.zeros((int(p.max()) + 1, int(g.max()) + 1), np.int64)
        np.add.at(inter, (p.ravel(), g.ravel()), 1)
        ap, ag = inter.sum(1), inter.sum(0)
        iou = inter / (ap[:, None] + ag[None, :] - inter).clip(min=1)
        iou[0, :] = iou[:, 0] = 0
        matches = int((iou > 0.5).sum())  # IoU > 0.5 matches are one-to-one
        tp, fp, fn = tp + matches, fp + len(pi) - matches, fn + len(gi) - matches
    return 2 * tp / max(2 * tp + fp + fn, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--train", type=int, default=30)
    ap.add_argument("--extra", nargs="*", default=[])
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds = 1.0
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    n = args.train
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        tifffile.imwrite(t / "train.tif", images[:n])
        tifffile.imwrite(t / "train_labels.tif", labels[:n])
        tifffile.imwrite(t / "test.tif", images[n:])
        t0 = time.perf_counter()
        subprocess.run([*CLI, "-q", "train", "--image", str(t / "train.tif"), "--labels",
                        str(t / "train_labels.tif"), "--labels-kind", "instance", "--out",
                        str(t / "m.pt"), "--seconds", str(args.seconds), *args.extra], check=True)
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([*CLI, "-q", "predict", "--model", str(t / "m.pt"), "--image",
                        str(t / "test.tif"), "--out", str(t / "pred.tif"), "--instances"],
                       check=True)
        pred_s = time.perf_counter() - t0
        pred = tifffile.imread(t / "pred.tif")
    gt = labels[n:]
    otsu = np.stack([connected(im > threshold_otsu(im)) for im in images[n:]])
    rows = []
    for name, p in (("napari-unet", pred), ("Otsu threshold", otsu)):
        fg, g = p > 0, gt > 0
        rows.append((name, (fg & g).sum() / (fg | g).sum(), f1_at_05(p, gt)))
    print(f"DSB 2018: trained on {n} images for {train_s:.0f} s, predicted {len(gt)} in {pred_s:.1f} s")
    print(f"{'method':<16} {'foreground IoU':>15} {'F1@0.5':>8} {'IoU / Otsu':>11}")
    for name, iou, f1 in rows:
        print(f"{name:<16} {iou:15.3f} {f1:8.3f} {iou / rows[1][1]:11.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
