"""Tiled prediction: time and accuracy against one untiled forward pass, and memory on stacks.

    python benchmarks/speed/predict.py [--device cpu|cuda] [--size 2048] [--stack 16] [--side 1024]

1. A ``size`` x ``size`` image predicted tiled (the default tiles) and in one forward pass
   over the same pixels: the time ratio and the largest probability difference farther
   than 64 pixels from the border.
2. A stack of ``stack`` slices of ``side`` x ``side`` predicted slice by slice: peak
   resident memory above the start, against the output's size plus one batch of tiles.
   Run in a child process so the peak is this step's alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import json
import resource
import subprocess
import threading
import time

import numpy as np
from _common import add_smoke, timed

from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor


def image_of(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    from scipy import ndimage as ndi

    return ndi.gaussian_filter(rng.normal(size=(size, size)), 3).astype(np.float32) * 10


def best_of(fn, device, repeat=2):
    """The shortest of ``repeat`` timed calls, and the last result."""
    runs = [timed(fn, device) for _ in range(repeat)]
    return min(t for t, _ in runs), runs[-1][1]


class RssSampler:
    """Peak resident memory, sampled every 2 ms on a thread (Linux /proc)."""

    def __init__(self):
        self.start = self.peak = rss()
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, rss())

    def __enter__(self):
        self.start = self.peak = rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def stack_memory(args) -> dict:
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=args.base), seed=0)
    predictor = Predictor(bundle, device=args.device)
    stack = np.stack([image_of(args.side, z) for z in range(args.stack)])
    predictor.predict(stack[0, :64, :64])  # load the kernels before measuring
    sampler = RssSampler()
    t0 = time.perf_counter()
    with sampler:
        pred = predictor.predict(stack)
    seconds = time.perf_counter() - t0
    peak = sampler.peak - sampler.start
    return {"peak": peak, "output": pred.labels.nbytes, "seconds": seconds,
            "input": stack.nbytes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--base", type=int, default=16)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--stack", type=int, default=16)
    ap.add_argument("--side", type=int, default=1024)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--_stack-child", action="store_true", dest="child")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.base, args.size, args.stack, args.side, args.tile = 4, 256, 2, 128, 128
    if args.child:
        print(json.dumps(stack_memory(args)))
        return 0
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=args.base), seed=0)
    tiled = Predictor(bundle, device=args.device, tile_size=args.tile)
    untiled = Predictor(bundle, device=args.device, tile_size=args.size + 64, overlap=0,
                        model=tiled.model)
    device = tiled.device
    image = image_of(args.size)
    # Bring BN statistics away from their initial values so the network is not trivial.
    t_untiled, p_untiled = best_of(lambda: untiled.probabilities_2d(image), device)
    t_tiled, p_tiled = best_of(lambda: tiled.probabilities_2d(image), device)
    inner = (slice(None), slice(64, -64), slice(64, -64))
    diff = float(np.abs(p_tiled[inner] - p_untiled[inner]).max())
    print(f"prediction on {device.type}, base {args.base}, {args.size}x{args.size}, tiles of "
          f"at most {args.tile} px")
    print(f"{'pass':<28} {'seconds':>8} {'ratio':>6} {'max |dp| inside':>16}")
    print(f"{'one untiled forward':<28} {t_untiled:8.2f} {1:6.2f} {'':>16}")
    print(f"{'tiled, blended':<28} {t_tiled:8.2f} {t_tiled / t_untiled:6.2f} {diff:16.2e}")
    mib = 1024**2
    print(f"\nstacks of {args.side} x {args.side} slices, predicted slice by slice")
    print(f"{'slices':>6} {'seconds':>8} {'output MiB':>11} {'peak growth MiB':>16}")
    for n in (max(1, args.stack // 4), args.stack):
        child = subprocess.run(
            [sys.executable, __file__, "--_stack-child", "--device", args.device, "--base",
             str(args.base), "--stack", str(n), "--side", str(args.side)],
            capture_output=True, text=True, check=True,
        )
        m = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"{n:6d} {m['seconds']:8.1f} {m['output'] / mib:11.1f} {m['peak'] / mib:16.0f}")
    print("(peak growth = output + one batch of tiles through the network; it does not grow "
          "with the number of slices beyond the output)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
