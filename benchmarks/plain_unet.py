"""A plain reference U-Net loop: what about 40 lines of PyTorch give in the same time.

2-class cross-entropy on whole 256 x 256 images (random 256 x 256 crops of larger ones),
batch 8, AdamW at 2e-3 (constant), elastic deformation and flips, fp32, channels_last,
a minimal U-Net (depth 4, 16 channels at the top, batch norm, bilinear up-sampling)
defined here; images normalised as napari-unet does (percentiles 1 and 99.8). No
sampling, loss or schedule tricks. Other benchmarks call :func:`train_plain` in their own
process, after or before napari-unet, with the same seconds, so every quality table can
show "napari-unet against a plain U-Net, same machine, same time".

    python benchmarks/plain_unet.py [--seconds 30]   # a quick run on DSB 2018
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SIDE, BATCH, LR = 256, 8, 2e-3


def block(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b),
                         nn.ReLU(inplace=True), nn.Conv2d(b, b, 3, padding=1, bias=False),
                         nn.BatchNorm2d(b), nn.ReLU(inplace=True))


class PlainUNet(nn.Module):
    def __init__(self, base: int = 16, depth: int = 4, classes: int = 2):
        super().__init__()
        w = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList([block(1, w[0])] + [block(w[i], w[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([block(w[i + 1] + w[i], w[i]) for i in reversed(range(depth))])
        self.out = nn.Conv2d(w[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.down):
            x = down(F.max_pool2d(x, 2) if i else x)
            skips.append(x)
        for up, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = up(torch.cat([x, skip], 1))
        return self.out(x)


def normalise(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, [1, 99.8])
    return ((image - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
    """Elastic deformation (smooth random field, up to ~8 px) and flips of a batch."""
    b, _, h, w = x.shape
    field = torch.randn(b, 2, h // 32, w // 32, generator=g) * (8 / max(h, w))
    field = F.interpolate(field, size=(h, w), mode="bicubic", align_corners=False)
    base = F.affine_grid(torch.eye(2, 3).expand(b, 2, 3), (b, 1, h, w), align_corners=False)
    grid = base + field.permute(0, 2, 3, 1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="reflection",
                      align_corners=False)[:, 0].long()
    for dim in (2, 3):
        flip = torch.rand(b, generator=g) < 0.5
        x[flip], y[flip] = x[flip].flip(dim), y[flip].flip(dim - 1)
    return x, y


def train_plain(images, masks, seconds: float, seed: int = 0):
    """Train on 2D ``images`` with binary ``masks`` (1 = foreground) for ``seconds`` of
    wall-clock time; return ``predict(image) -> p(foreground)`` and set
    ``predict.iterations`` to the number of training steps."""
    torch.manual_seed(seed)
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    pads = [((0, max(0, SIDE - m.shape[0])), (0, max(0, SIDE - m.shape[1]))) for m in masks]
    xs = [np.pad(normalise(i), p, mode="symmetric") for i, p in zip(images, pads)]
    ys = [np.pad(np.asarray(m) > 0, p, mode="symmetric").astype(np.int64) for m, p in zip(masks, pads)]
    model = PlainUNet().to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        picks = rng.integers(len(xs), size=BATCH)
        corners = [(rng.integers(xs[k].shape[0] - SIDE + 1), rng.integers(xs[k].shape[1] - SIDE + 1))
                   for k in picks]
        x = torch.from_numpy(np.stack([xs[k][a:a + SIDE, b:b + SIDE] for k, (a, b) in zip(picks, corners)]))
        y = torch.from_numpy(np.stack([ys[k][a:a + SIDE, b:b + SIDE] for k, (a, b) in zip(picks, corners)]))
        x, y = augment(x[:, None], y, g)
        loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        steps += 1
    model.eval()

    @torch.no_grad()
    def predict(image: np.ndarray) -> np.ndarray:
        h, w = image.shape
        x = np.pad(normalise(image), ((0, -h % 16), (0, -w % 16)), mode="symmetric")
        x = torch.from_numpy(x)[None, None].contiguous(memory_format=torch.channels_last)
        return torch.softmax(model(x), 1)[0, 1, :h, :w].numpy()

    predict.iterations = steps
    return predict


def main(argv: list[str] | None = None) -> int:
    import argparse

    import tifffile
    from _common import DATA, add_smoke, need, table, use_smoke_data

    from napari_unet.core.metrics import foreground_iou

    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds = 0.5
    folder = need(DATA / "dsb2018")
    images, labels = (tifffile.imread(folder / f) for f in ("fluo_image.tif", "fluo_labels.tif"))
    predict = train_plain(images[:30], labels[:30] > 0, args.seconds)
    iou = np.mean([foreground_iou(predict(i) >= 0.5, t > 0) for i, t in zip(images[30:], labels[30:])])
    print(table(f"plain U-Net, {args.seconds:.0f} s on DSB images 0-29, scored on 30-39",
                ["loop", "steps", "fg IoU"], [["plain U-Net", predict.iterations, float(iou)]]))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
