"""Elastic deformation speed: napari-unet's batched torch transform against scipy.

    python benchmarks/speed/augment.py [--size 256] [--batch 16] [--device cpu|cuda]

Both sides apply the same transform to 256x256 image + label pairs: a random dihedral
transform plus the U-Net paper's elastic field (random displacements on a coarse grid,
bicubically interpolated), image bilinear, labels nearest. The scipy side interpolates
each pair with ``scipy.ndimage.map_coordinates`` (order 1 and 0), as a CPU data loader
would. Prints pairs per second and the ratio, measured in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import time

import numpy as np
import torch
from _common import add_smoke
from scipy import ndimage as ndi

from napari_unet.core.models.device import keep_freed_memory
from napari_unet.core.train.augment import AugmentConfig, Augmenter, _cubic_weights


def scipy_pair(image, labels, rng, cfg: AugmentConfig):
    h, w = image.shape
    gh, gw = max(2, round(h / cfg.elastic_grid) + 1), max(2, round(w / cfg.elastic_grid) + 1)
    wy = _cubic_weights(gh, h, "cpu").numpy()
    wx = _cubic_weights(gw, w, "cpu").numpy()
    coarse = rng.normal(0, cfg.elastic_sigma, (2, gh, gw))
    dy, dx = (wy @ c @ wx.T for c in coarse)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    k = rng.integers(4)
    if rng.integers(2):
        xx = xx[:, ::-1]
    yy, xx = np.rot90(yy, k), np.rot90(xx, k)
    coords = np.stack([yy + dy, xx + dx])
    out_img = ndi.map_coordinates(image, coords, order=1, mode="mirror")
    out_lab = ndi.map_coordinates(labels, coords, order=0, mode="mirror")
    return out_img, out_lab


#: Seconds each side is timed for (shorter with --smoke).
MIN_SECONDS = 2.0


def rate(fn, n_pairs, min_seconds=None):
    min_seconds = MIN_SECONDS if min_seconds is None else min_seconds
    fn()  # warm up
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        count += n_pairs
    return count / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.size, args.batch = 64, 2
        global MIN_SECONDS
        MIN_SECONDS = 0.2
    keep_freed_memory()  # as the trainer does; it speeds up the scipy side too
    s, b = args.size, args.batch
    rng = np.random.default_rng(0)
    cfg = AugmentConfig(intensity=0.0, noise=0.0)
    image = rng.random((s, s)).astype(np.float32)
    labels = rng.integers(0, 3, (s, s)).astype(np.int64)
    dev = torch.device(args.device)
    timages = torch.from_numpy(np.repeat(image[None, None], b, 0)).to(dev)
    tlabels = torch.from_numpy(np.repeat(labels[None], b, 0)).to(dev)
    aug = Augmenter(cfg, seed=0, device=dev)

    def torch_batch():
        out = aug(timages, tlabels)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return out

    scipy_rate = rate(lambda: scipy_pair(image, labels, rng, cfg), 1)
    torch_rate = rate(torch_batch, b)
    print(f"elastic deformation + flips, {s}x{s} image+labels pairs, torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'implementation':<32} {'pairs/s':>10} {'ratio':>7}")
    print(f"{'scipy map_coordinates (1 pair)':<32} {scipy_rate:10.0f} {1.0:7.2f}")
    name = f"napari-unet {dev.type} (batch {b})"
    print(f"{name:<32} {torch_rate:10.0f} {torch_rate / scipy_rate:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
