"""Does object size explain the loss on other kinds of image? Predict them smaller.

    python benchmarks/object_size.py [--seconds 150] [--seed 0] [--factors 1 0.5 0.33]

napari-unet trains as ``napari-unet train --labels-kind instance`` (command-line
defaults) on the 40 DSB 2018 fluorescence images, whose nuclei are small (median 104
pixels), and predicts the dense (360x360, median nucleus 1,700 pixels) and dim (512x640,
1,240 pixels) fluorescence images of ``dsb2018/varied/`` after shrinking each image by
each factor (linear interpolation with anti-aliasing); the probabilities are resized back
and decided and split into objects as ``napari-unet predict --instances`` does. If the
scores rise as the images shrink, the model fails on those images because their objects
are larger than the ones it was trained on.
"""

from __future__ import annotations

import argparse

import numpy as np
from crossval import VARIED, dsb, fit, predictor_of, varied

from napari_unet.core.speed import cpu_name


def main() -> None:
    import torch
    from skimage.transform import rescale, resize

    from napari_unet.core.device import cpu_threads
    from napari_unet.core.metrics import foreground_iou, instance_scores

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--factors", type=float, nargs="+", default=[1.0, 0.5, 0.33])
    args = ap.parse_args()
    torch.set_num_threads(cpu_threads(False))
    images, labels = dsb()
    trainer = fit(images, labels, "instance", args.seconds, args.seed)
    predictor, popts = predictor_of(trainer)
    print(f"{cpu_name()}: {trainer.run_iteration} steps in {args.seconds:g} s, seed {args.seed}")
    print(f"{'images':12s} {'shrunk by':>9s} {'fg IoU':>8s} {'F1@0.5':>8s} {'fg ratio':>9s}")
    for size, name in VARIED.items():
        if name == "bright-field":  # inverted contrast: a fluorescence model fails at any size
            continue
        stack, truth = varied(size)
        for factor in args.factors:
            rows = []
            for image, true in zip(stack, truth):
                small = image if factor == 1 else rescale(
                    image.astype(np.float32), factor, order=1, preserve_range=True,
                    anti_aliasing=True)
                probs = predictor.predict(small, probabilities=True).probabilities
                if factor != 1:
                    probs = np.stack([resize(p, image.shape, order=1) for p in probs])
                classes = predictor.labels_2d(probs)
                objects = predictor.instances_2d(probs, classes, popts.min_size)
                fg = classes > 0
                rows.append((foreground_iou(fg, true > 0), instance_scores(objects, true)["f1"],
                             fg.sum() / max((true > 0).sum(), 1)))
            iou, f1, ratio = np.mean(rows, 0)
            print(f"{name:12s} {factor:9.2f} {iou:8.3f} {f1:8.3f} {ratio:9.3f}", flush=True)


if __name__ == "__main__":
    main()
