"""Trainer overhead: iterations per second of the whole ``fit()`` loop (sampling,
augmentation, transfer, step) against the bare model's forward + backward + optimizer
step at the same batch and patch size, on the same device, in the same run.

    python benchmarks/speed/trainer.py [--device cpu|cuda] [--base 16] [--batch 8] [--patch 128]
    python benchmarks/speed/trainer.py --throughput [--seconds 20]

``--throughput`` (CPU): pixels seen per second by ``napari-unet train``'s trainer (the
command line's defaults for instance labels, DSB 2018 images) against the plain loop of
``plain_unet.py``, each for ``--seconds``, interleaved twice; then the fp32 step time of
the default model (forward, backward and AdamW step on one batch already in memory) at
patch 128 batch 8 against patch 256 batches 2, 4 and 8, and the plain loop's model at
256 x 8, interleaved, median of ``--iterations`` steps per round.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import dataclasses

import torch
from _common import add_smoke, timed

from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNet, UNetConfig
from napari_unet.core.train.batches import DeviceBatches
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.losses import masked_loss
from napari_unet.core.train.trainer import TrainConfig, Trainer
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


def fixed_batch_step(model: torch.nn.Module, batch: int, patch: int, n: int) -> float:
    """Median seconds of fp32 forward + backward + AdamW step on one fixed batch."""
    import statistics
    import time

    x = torch.randn(batch, 1, patch, patch).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, patch, patch))
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    times = []
    for i in range(n + 2):  # two warm-up steps
        t0 = time.perf_counter()
        loss = masked_loss(model(x), y, None, 0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(args) -> None:
    """Pixels per second of the trainer against the plain loop, and step times by shape."""
    import time

    import numpy as np
    import tifffile
    from _common import DATA, need, table
    from plain_unet import BATCH, SIDE, PlainUNet, train_plain

    from napari_unet.cli import build_parser, make_trainer
    from napari_unet.core.config import defaults_for
    from napari_unet.core.models.device import cpu_threads
    from napari_unet.core.models.speed import cpu_choice, cpu_name

    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")[:30]
    labels = tifffile.imread(folder / "fluo_labels.tif")[:30]
    threads = cpu_threads(False)
    print(f"{cpu_name()}: {threads} torch threads, {cpu_choice().why}")

    def project() -> tuple[int, float, int, int]:
        argv = ["train", "--image", "-", "--labels", "-", "--labels-kind", "instance",
                "--out", "-", "--seconds", str(args.seconds), "--device", "cpu"]
        trainer = make_trainer(build_parser().parse_args(argv), [images], [labels])
        for _ in trainer.fit():
            pass
        cfg = trainer.config
        return (trainer.run_iteration, trainer.bundle().history[-1]["seconds"], cfg.batch_size,
                cfg.patch_size)

    def plain() -> tuple[int, float, int, int]:
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        fn = train_plain(list(images), list(labels > 0), args.seconds, 0)
        return fn.iterations, time.perf_counter() - t0, BATCH, SIDE

    runs: dict[str, list] = {"napari-unet train (CLI defaults, instance)": [],
                             "plain U-Net loop": []}
    for order in ((0, 1), (1, 0)):  # interleaved against drift of other load
        for k in order:
            name = list(runs)[k]
            runs[name].append(project() if k == 0 else plain())
    rows, rates = [], {}
    for name, results in runs.items():
        its = sum(r[0] for r in results)
        secs = sum(r[1] for r in results)
        b, p = results[0][2], results[0][3]
        rates[name] = its * b * p * p / secs
        rows.append([name, f"{b} x {p}²", its, f"{secs / its:.2f}",
                     f"{rates[name] / 1e6:.3f}"])
    first = next(iter(rates.values()))
    for row, rate in zip(rows, rates.values()):
        row.append(f"{rate / first:.2f}")
    print(table(f"pixels seen per second, 2 x {args.seconds:g} s each",
                ["loop", "batch", "steps", "s/step", "Mpx/s", "ratio"], rows,
                [44, 10, 6, 7, 7, 6]))
    print()

    shapes = [("default model", 128, 8), ("default model", 256, 2), ("default model", 256, 4),
              ("default model", 256, 8), ("plain loop's model", 256, 8)]
    base = defaults_for("instance", "cpu").base_channels
    times: dict[tuple, list[float]] = {s: [] for s in shapes}
    for _ in range(2):
        for shape in shapes:
            name, patch, batch = shape
            torch.manual_seed(0)
            model = (UNet(n_classes=3, base_channels=base) if name == "default model"
                     else PlainUNet())
            torch.set_num_threads(threads)
            times[shape].append(fixed_batch_step(model, batch, patch, args.iterations))
    ref = float(np.median(times[shapes[0]])) / (8 * 128 * 128)
    rows = []
    for shape, ts in times.items():
        name, patch, batch = shape
        t = float(np.median(ts))
        px = batch * patch * patch
        rows.append([name, f"{batch} x {patch}²", f"{t:.3f}", f"{px / t / 1e6:.3f}",
                     f"{ref / (t / px):.2f}"])
    print(table(f"fp32 step time (forward, backward, AdamW), base {base}, depth 4, "
                f"median of 2 x {args.iterations} steps",
                ["model", "batch", "s/step", "Mpx/s", "px/s vs 8 x 128²"], rows,
                [20, 10, 8, 8, 17]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--iterations", type=int, default=None,
                    help="steps timed per measurement (default 30; 5 with --throughput)")
    ap.add_argument("--no-mixed-precision", action="store_true")
    ap.add_argument("--throughput", action="store_true",
                    help="pixels per second against the plain loop, and step time by shape")
    ap.add_argument("--seconds", type=float, default=20, help="per run, with --throughput")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.base, args.depth, args.batch, args.patch, args.iterations = 4, 2, 2, 32, 2
        args.seconds = min(args.seconds, 1.0)
    if args.throughput:
        args.iterations = args.iterations or 5
        throughput(args)
        return 0
    args.iterations = args.iterations or 30
    import tifffile

    image = tifffile.imread(sample_path("nuclei"))
    labels = tifffile.imread(sample_path("nuclei_labels"))
    from napari_unet.core.labels import to_annotations

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
