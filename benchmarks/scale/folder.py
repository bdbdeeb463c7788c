"""Throughput of ``napari-unet predict`` on a folder: one process vs a dask LocalCluster.

Writes N mosaics of the nuclei sample to a temporary folder and predicts them
with the shipped nuclei model (base 16, depth 4), first in one process (torch's default
threads), then with ``--workers W`` (W processes of one thread each). Each time is the
whole command as a user runs it: start, model loading, cluster start and shutdown
included. Both runs write the same labels (checked). The CPU speed measurement is skipped
(fp32, as set below) so that each fresh worker does not time the CPU first.

    python benchmarks/scale/folder.py [--n 16] [--size 1024] [--workers 2]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import os
import subprocess
import tempfile
import time

import numpy as np
import tifffile
from _common import add_smoke, table

ROOT = Path(__file__).resolve().parents[2]


def cpu_name() -> str:
    from napari_unet.core.models.speed import cpu_name as name

    return name()


def make_images(folder: Path, n: int, size: int) -> None:
    """``n`` images of ``size`` x ``size``, each a different mosaic of the rotated
    slices of the nuclei sample."""
    from napari_unet.samples import sample_path

    slices = tifffile.imread(sample_path("nuclei"))
    rng = np.random.default_rng(0)
    side = slices.shape[-1]
    reps = -(-size // side)
    for i in range(n):
        rows = []
        for _ in range(reps):
            tiles = [np.rot90(slices[rng.integers(len(slices))], rng.integers(4))
                     for _ in range(reps)]
            rows.append(np.concatenate(tiles, axis=1))
        image = np.concatenate(rows, axis=0)[:size, :size]
        tifffile.imwrite(folder / f"img{i:03d}.tif", np.ascontiguousarray(image))


def run(folder: Path, out: Path, model: Path, extra: list[str], env: dict) -> float:
    cmd = [sys.executable, "-m", "napari_unet.cli", "-q", "predict", "--model", str(model),
           "--image", str(folder), "--out", str(out), "--instances", "--device", "cpu",
           *extra]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="images")
    parser.add_argument("--size", type=int, default=1024, help="side of each image")
    parser.add_argument("--workers", type=int, default=2)
    add_smoke(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.size, args.workers = 2, 128, 1

    import torch

    from napari_unet.core.config import START_MODEL

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("NAPARI_UNET_PRECISION", "fp32")
    env.setdefault("NAPARI_UNET_THREADS", str(os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = tmp / "images"
        images.mkdir()
        make_images(images, args.n, args.size)
        one = run(images, tmp / "one", START_MODEL, [], env)
        many = run(images, tmp / "many", START_MODEL, ["--workers", str(args.workers)], env)
        for path in sorted((tmp / "one").iterdir()):
            if not np.array_equal(tifffile.imread(path), tifffile.imread(tmp / "many" / path.name)):
                sys.exit(f"{path.name}: the cluster's labels differ from one process's")
    rows = [
        ["one process", f"{torch.get_num_threads()} threads", one, args.n / one, 1.0],
        [f"--workers {args.workers}", f"{args.workers} x 1 thread", many, args.n / many,
         one / many],
    ]
    print(table(
        f"predict a folder of {args.n} images of {args.size}x{args.size} (nuclei sample mosaics, "
        f"--instances, nuclei model base 16 depth 4, fp32) on {cpu_name()}, "
        f"{os.cpu_count()} logical cores; whole command, start included; labels identical",
        ["run", "threads", "seconds", "images/s", "speed-up"], rows,
        [14, 16, 10, 10, 10]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
