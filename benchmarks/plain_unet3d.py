"""A plain reference 3D U-Net loop: what about 50 lines of PyTorch give in the same time.

Cross-entropy on random 3D crops (no sampling around annotations; voxels labelled 0 are
ignored, so strokes work too), batch 2, Adam at 2e-3 (constant), random flips, fp32,
a minimal 3D U-Net (depth 3, 16 channels at the top, batch norm, trilinear up-sampling,
the first pooling (1, 2, 2) as z is coarser than xy) defined here; the volume normalised
by its 1 and 99.8 percentiles. Prediction: one pass over the whole volume at its own
voxel size, objects the 26-connected components of the foreground.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def block(a: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(a, b, 3, padding=1, bias=False), nn.BatchNorm3d(b),
                         nn.ReLU(inplace=True), nn.Conv3d(b, b, 3, padding=1, bias=False),
                         nn.BatchNorm3d(b), nn.ReLU(inplace=True))


class Plain3D(nn.Module):
    def __init__(self, n_classes: int = 2, c: int = 16):
        super().__init__()
        self.pools = [(1, 2, 2), (2, 2, 2), (2, 2, 2)]
        widths = [c, 2 * c, 4 * c, 8 * c]
        self.enc = nn.ModuleList([block(1, c)] + [block(widths[i], widths[i + 1])
                                                  for i in range(3)])
        self.dec = nn.ModuleList([block(widths[i + 1] + widths[i], widths[i])
                                  for i in reversed(range(3))])
        self.out = nn.Conv3d(c, n_classes, 1)

    def forward(self, x):
        skips = [self.enc[0](x)]
        for pool, enc in zip(self.pools, self.enc[1:]):
            skips.append(enc(F.max_pool3d(skips[-1], pool)))
        y = skips.pop()
        for dec in self.dec:
            skip = skips.pop()
            y = dec(torch.cat([skip, F.interpolate(y, size=skip.shape[2:], mode="trilinear")], 1))
        return self.out(y)


def normalise(volume: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(volume, [1, 99.8])
    return ((volume - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def train_plain3d(volume, labels, seconds: float, patch=(16, 64, 64), seed: int = 0,
                  n_classes: int = 2, max_iterations: int | None = None):
    """Train on ``labels`` (0 = ignored, 1 = background, 2.. classes); the model and
    its iterations."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x_all = torch.from_numpy(normalise(volume))
    y_all = torch.from_numpy(labels.astype(np.int64) - 1)  # -1 ignored
    pad = [max(0, p - n) for p, n in zip(patch, x_all.shape)]
    if any(pad):
        spec = [v for p in reversed(pad) for v in (0, p)]
        x_all = F.pad(x_all[None, None], spec, mode="replicate")[0, 0]
        y_all = F.pad(y_all, spec, value=-1)
    model = Plain3D(n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0, it = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds and (max_iterations is None or it < max_iterations):
        xs, ys = [], []
        for _ in range(2):
            c = [rng.integers(0, n - p + 1) for n, p in zip(x_all.shape, patch)]
            sl = tuple(slice(a, a + p) for a, p in zip(c, patch))
            x, y = x_all[sl], y_all[sl]
            for axis in range(3):
                if rng.random() < 0.5:
                    x, y = x.flip(axis), y.flip(axis)
            xs.append(x[None])
            ys.append(y)
        logits = model(torch.stack(xs))
        loss = F.cross_entropy(logits, torch.stack(ys), ignore_index=-1)
        if torch.isfinite(loss):
            opt.zero_grad()
            loss.backward()
            opt.step()
        it += 1
    return model, it


@torch.no_grad()
def predict_plain3d(model, volume) -> tuple[np.ndarray, np.ndarray]:
    """Foreground labels and 3D connected components of the whole volume, one pass."""
    from skimage.measure import label

    model.eval()
    x = torch.from_numpy(normalise(volume))[None, None]
    pads = [(-n) % m for n, m in zip(x.shape[2:], (4, 8, 8))]
    xp = F.pad(x, [v for p in reversed(pads) for v in (0, p)], mode="replicate")
    probs = torch.softmax(model(xp), 1)[0, :, : x.shape[2], : x.shape[3], : x.shape[4]]
    fg = (probs[0] < 0.5).numpy()
    return fg.astype(np.uint8), label(fg, connectivity=3)
