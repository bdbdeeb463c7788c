"""Peak memory of predicting one big image from the command line.

    python benchmarks/scale/bigimage.py [--side 16384] [--base 4] [--depth 2]

Writes a SIDE x SIDE uint8 TIFF and a small model in a temporary folder, runs
``napari-unet predict`` once in a child process, and prints a table with the input's
size, the child's peak resident memory (``getrusage`` maxrss) and the wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import os
import platform
import resource
import subprocess
import tempfile
import time

import numpy as np
import tifffile
from _common import add_smoke

from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=16384)
    parser.add_argument("--base", type=int, default=4)
    parser.add_argument("--depth", type=int, default=2)
    add_smoke(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.side = 1024
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        image = folder / "big.tif"
        rng = np.random.default_rng(0)
        row = rng.integers(0, 255, args.side, dtype=np.uint8)
        with tifffile.TiffWriter(image) as tif:  # written row block by row block
            tif.write(np.broadcast_to(row, (args.side, args.side)), rowsperstrip=256)
        model = folder / "m.pt"
        config = UNetConfig(n_classes=2, base_channels=args.base, depth=args.depth)
        ModelBundle.new(config).save(model)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "napari_unet.cli", "-q", "predict",
                               "--model", str(model), "--image", str(image), "--out",
                               str(folder / "labels.tif"), "--device", "cpu"],
                              capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        if proc.returncode != 0:
            sys.exit(f"predict failed ({proc.returncode}): {proc.stderr.strip()}")
    size = args.side * args.side
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores), "
          f"model base {args.base} depth {args.depth}")
    print(f"{'image':>16} {'input MiB':>10} {'peak RSS MiB':>13} {'peak / input':>13} "
          f"{'seconds':>8}")
    print(f"{f'{args.side}x{args.side} u8':>16} {size / 2**20:>10.0f} {peak / 2**20:>13.0f} "
          f"{peak / size:>13.1f} {seconds:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
