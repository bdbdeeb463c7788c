"""Train the starting model that ships in ``napari_unet/models/`` (run on a GPU if you can).

    python scripts/pretrain.py [--iterations 4000] [--device auto] [--images 400]

A two-class U-Net (background, nucleus) trained on synthetic fluorescence nuclei of many
styles (``napari_unet.synthetic.random_style``): sizes, densities, brightness, blur,
texture, background and noise. New models for sparse strokes start from it, so a few
strokes only need to tell the model which blobs and which background are meant; with
another number of classes the output layer grows (the old classes keep their weights).
The file is written with half-precision weights to keep the package small.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from napari_unet.core.config import START_ARCHITECTURE, START_MODEL
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.train.augment import AugmentConfig
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig, Trainer
from napari_unet.synthetic import nuclei_slice, random_style


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=4000)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=START_MODEL)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    images, labels = zip(*(nuclei_slice(rng, (256, 256), random_style(rng))
                           for _ in range(args.images)))
    image, label = np.stack(images), np.stack(labels)
    data = TrainingData.from_annotations([image], [to_annotations(label > 0, "semantic")],
                                         validation_fraction=0.05, seed=args.seed)
    print(f"{args.images} synthetic images in {time.perf_counter() - t0:.0f} s")
    bundle = ModelBundle.new(START_ARCHITECTURE, "annotation", seed=args.seed,
                             class_names=["background", "nucleus"])
    cfg = dataclasses.replace(
        TrainConfig(), iterations=args.iterations, batch_size=args.batch, patch_size=128,
        learning_rate=3e-3, device=args.device, leave_core_free=False, seed=args.seed,
        validate_every=500, augment=AugmentConfig(elastic_sigma=6.0, intensity=0.3),
    )
    trainer = Trainer(bundle, data, cfg)
    for p in trainer.fit():
        if p.validation_iou is not None:
            print(f"it {p.iteration:5d} loss {p.loss:.4f} validation IoU {p.validation_iou:.3f} "
                  f"{p.elapsed:.0f} s", flush=True)
    out = trainer.bundle()
    out.state_dict = {k: v.half() if v.is_floating_point() else v
                      for k, v in out.state_dict.items()}
    out.optimizer_state = None
    out.history = [{**h, "data": "synthetic nuclei (napari_unet.synthetic)"} for h in out.history]
    out.iterations = 0
    out.save(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024**2:.1f} MiB) on "
          f"{trainer.device.type} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
