"""fp32 against bf16, and thread counts, on this CPU: the measurement behind the choice.

    python benchmarks/speed/precision.py [--steps 5]

Times training steps (forward, backward, AdamW) and prediction batches of the default
model at the CPU defaults (batch 8, patch 128) and at patch 256, interleaving the settings
so that other load slows each alike, and prints what ``napari_unet.core.models.speed`` picks
here (it measures a shorter version of the same once per machine).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import os
import statistics
import time

import _common
from _common import add_smoke


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    add_smoke(ap)
    args = ap.parse_args(argv)
    shapes = ((8, 128), (2, 256))  # (batch, patch) of the default model on a CPU
    if args.smoke:
        args.steps, shapes = 1, ((2, 32),)
    for name in ("NAPARI_UNET_PRECISION", "NAPARI_UNET_THREADS"):
        os.environ.pop(name, None)

    import torch
    import torch.nn.functional as F

    from napari_unet.core.models import speed
    from napari_unet.core.models.unet import UNet, UNetConfig

    cores = speed.logical_cores()
    default = torch.get_num_threads()
    bf16_ok = speed.oneDNN_bf16()
    print(f"CPU: {speed.cpu_name()}, {cores} logical cores, torch {torch.__version__} "
          f"(default {default} threads), oneDNN bf16: {bf16_ok}, "
          f"load average {os.getloadavg()[0]:.2f}\n")
    model = UNet.from_config(UNetConfig(base_channels=16, depth=4))
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def train_step(x, y, bf16):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def predict_step(x, y, bf16):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model(x).float().softmax(1)

    rows = []
    for batch, patch in shapes:
        x = torch.randn(batch, 1, patch, patch).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 2, (batch, patch, patch))
        for what, fn in (("train step", train_step), ("predict batch", predict_step)):
            candidates = speed.thread_candidates(cores, default)
            settings = [(n, False) for n in candidates]
            if bf16_ok:
                settings += [(n, True) for n in candidates]
            times = {s: [] for s in settings}
            for threads, bf16 in settings:
                torch.set_num_threads(threads)
                fn(x, y, bf16)  # warm-up
            for _ in range(args.steps):
                for s in settings:
                    torch.set_num_threads(s[0])
                    t0 = time.perf_counter()
                    fn(x, y, s[1])
                    times[s].append(time.perf_counter() - t0)
            base = statistics.median(times[(default, False)])
            for (threads, bf16), t in times.items():
                med = statistics.median(t)
                rows.append([f"{what}, batch {batch} x {patch}²", "bf16" if bf16 else "fp32",
                             threads, med, base / med])
    torch.set_num_threads(default)
    print(_common.table("Median seconds per call (ratio: fp32 at the default thread count "
                        "/ this; above 1 is faster)",
                        ["workload", "precision", "threads", "seconds", "speed-up"], rows,
                        [34, 9, 7, 8, 8]))
    if not args.smoke:  # the measurement itself takes seconds of full load
        measured = speed.measure_cpu()
        print(f"\nWhat napari-unet picks here: {measured.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
