"""Trainer overhead: iterations per second of the whole ``fit()`` loop (sampling,
augmentation, transfer, step) against the bare model's forward + backward + optimizer
step at the same batch and patch size, on the same device, in the same run.

    python benchmarks/trainer.py [--device cpu|cuda] [--base 16] [--batch 8] [--patch 128]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from _common import timed

from napari_unet.core.batches import DeviceBatches
from napari_unet.core.checkpoint import ModelBundle
from napari_unet.core.data import TrainingData
from napari_unet.core.losses import masked_loss
from napari_unet.core.model import UNetConfig
from napari_unet.core.train import TrainConfig, Trainer
from napari_unet.samples import sample_path


def bare_rate(trainer: Trainer, batch: int, patch: int, n: int) -> float:
    """The same model, optimizer and precision, fed one fixed batch already on the device."""
    dev = trainer.device
    x = torch.randn(batch, 1, patch, patch, device=dev)
    y = torch.randint(0, trainer.model.n_classes, (batch, patch, patch), device=dev)
    if dev.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    model, opt = trainer.model, trainer.optimizer
    model.train()

    def step():
        with trainer._autocast():
            logits = model(x)
        loss = masked_loss(logits, y, None, trainer.config.dice_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    return 1 / timed(step, dev, n)[0]


def fit_rate(trainer: Trainer, n: int) -> float:
    gen = trainer.fit()
    for _ in range(3):
        next(gen)
    rate = 1 / timed(lambda: next(gen), trainer.device, n)[0]
    trainer.stop()
    for _ in gen:
        pass
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--no-mixed-precision", action="store_true")
    args = ap.parse_args()
    import tifffile

    image = tifffile.imread(sample_path("nuclei"))
    labels = tifffile.imread(sample_path("nuclei_labels"))
    from napari_unet.core.data import to_annotations

    data = TrainingData.from_annotations([image], [to_annotations(labels, "instance")],
                                         validation_fraction=0)
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=args.base, depth=args.depth))
    cfg = dataclasses.replace(TrainConfig(), iterations=10**9, batch_size=args.batch,
                              patch_size=args.patch, device=args.device, leave_core_free=False,
                              mixed_precision=not args.no_mixed_precision)
    trainer = Trainer(bundle, data, cfg)
    on_gpu = DeviceBatches.fits(trainer.sampler, trainer.device)
    rates = {"bare": [], "fit": [], "host": []}
    for _ in range(2):  # interleaved, best of two, against drift
        rates["bare"].append(bare_rate(trainer, args.batch, args.patch, args.iterations))
        trainer = Trainer(trainer.bundle(), data, cfg)
        rates["fit"].append(fit_rate(trainer, args.iterations))
        trainer = Trainer(trainer.bundle(), data, cfg)
        if on_gpu:  # the same loop with patches cut on the host by the sampling thread
            limit = DeviceBatches.MAX_BYTES
            DeviceBatches.MAX_BYTES = 0
            try:
                rates["host"].append(fit_rate(trainer, args.iterations))
            finally:
                DeviceBatches.MAX_BYTES = limit
            trainer = Trainer(trainer.bundle(), data, cfg)
    bare, fit = max(rates["bare"]), max(rates["fit"])
    print(f"trainer on {trainer.device.type} ({torch.get_num_threads()} threads), base "
          f"{args.base}, depth {args.depth}, batch {args.batch}, patch {args.patch}")
    print(f"{'loop':<44} {'it/s':>8} {'images/s':>9} {'ratio':>6}")
    print(f"{'bare model forward+backward+step':<44} {bare:8.2f} {bare * args.batch:9.1f} {1:6.2f}")
    where = "patches cut on the GPU" if on_gpu else "sampling thread"
    print(f"{'fit() (' + where + ')':<44} {fit:8.2f} {fit * args.batch:9.1f} {fit / bare:6.2f}")
    if rates["host"]:
        host = max(rates["host"])
        print(f"{'fit() (sampling thread on the host)':<44} {host:8.2f} "
              f"{host * args.batch:9.1f} {host / bare:6.2f}")


if __name__ == "__main__":
    main()
