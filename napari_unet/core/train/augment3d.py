"""Batched, seeded, paired augmentation of 3D patches on the training device.

Per sample: flips along x, y and z and a transposition of x and y (when the patch is
square in xy: with the flips, the eight rotations and reflections of the xy plane), as
exact index operations; then the elastic deformation of :mod:`.augment` in 3D: random
displacements on a coarse grid (``elastic_grid`` pixels apart in xy, as far in
micrometres along z), trilinearly interpolated to a dense field, z displacements
divided by the anisotropy so that they are as large in micrometres as those in xy. One
``grid_sample`` moves image and labels with the same field: trilinear for the image,
nearest for the labels (label values stay exactly the set they were) and the weights.
Intensity jitter touches the image only, as in 2D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_unet.core.config import AugmentConfig
from napari_unet.core.train.augment import Augmenter


def elastic_grid_3d(batch: int, shape: tuple[int, int, int], sigma: float, grid: int,
                    anisotropy: float, generator: torch.Generator,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """A sampling grid (B, Z, Y, X, 3) as (x, y, z) in ``grid_sample``'s units: the
    identity plus a smooth random field of ``sigma`` pixels (xy; z: ``sigma /
    anisotropy`` slices)."""
    d, h, w = shape
    gz = max(2, round(d * anisotropy / grid) + 1)
    gy = max(2, round(h / grid) + 1)
    gx = max(2, round(w / grid) + 1)
    coarse = torch.randn((batch, 3, gz, gy, gx), generator=generator, device=device)
    coarse[:, 0] *= sigma * 2.0 / max(w - 1, 1)
    coarse[:, 1] *= sigma * 2.0 / max(h - 1, 1)
    coarse[:, 2] *= sigma / anisotropy * 2.0 / max(d - 1, 1)
    field = F.interpolate(coarse, size=(d, h, w), mode="trilinear", align_corners=True)
    zs = torch.linspace(-1, 1, d, device=device)
    ys = torch.linspace(-1, 1, h, device=device)
    xs = torch.linspace(-1, 1, w, device=device)
    gz_, gy_, gx_ = torch.meshgrid(zs, ys, xs, indexing="ij")
    base = torch.stack([gx_, gy_, gz_], dim=-1)
    return base + field.permute(0, 2, 3, 4, 1)


def warp_3d(images: torch.Tensor, labels: torch.Tensor, grid: torch.Tensor,
            weights: torch.Tensor | None = None):
    """Images (B, C, Z, Y, X) trilinearly, labels (B, Z, Y, X) and weights by nearest."""
    out_img = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                            align_corners=True)
    out_lab = F.grid_sample(labels.unsqueeze(1).to(grid.dtype), grid, mode="nearest",
                            padding_mode="reflection", align_corners=True)
    out_lab = out_lab.squeeze(1).to(labels.dtype)
    out_w = None
    if weights is not None:
        out_w = F.grid_sample(weights.unsqueeze(1), grid, mode="nearest",
                              padding_mode="reflection", align_corners=True).squeeze(1)
    return out_img, out_lab, out_w


class VolumeAugmenter(Augmenter):
    """Seeded paired augmentation of 3D batches on one device (``anisotropy``: how many
    times coarser z is than xy)."""

    def __init__(self, config: AugmentConfig | None = None, seed: int = 0,
                 device: torch.device | str = "cpu", anisotropy: float = 1.0):
        super().__init__(config, seed, device)
        self.anisotropy = float(anisotropy)

    def _coin(self, n: int) -> torch.Tensor:
        return torch.rand(n, generator=self.generator, device=self.device) < 0.5

    def flip(self, images: torch.Tensor, labels: torch.Tensor,
             weights: torch.Tensor | None = None):
        """Per sample: flips along x, y, z, and a transposition of x and y when square."""
        b, _, _, h, w = images.shape
        draws = self._coin(4 * b).reshape(b, 4).tolist()  # one read per batch
        tensors = [images, labels] + ([weights] if weights is not None else [])
        outs = [list(t.unbind(0)) for t in tensors]
        for i, (fx, fy, fz, tr) in enumerate(draws):
            for k in range(len(tensors)):
                s = outs[k][i]
                off = s.ndim - 3  # images carry channels first
                axes = [a + off for a, flag in ((2, fx), (1, fy), (0, fz)) if flag]
                if axes:
                    s = torch.flip(s, axes)
                if tr and h == w:
                    s = s.transpose(off + 1, off + 2)
                outs[k][i] = s
        stacked = [torch.stack(o).contiguous() for o in outs]
        return stacked[0], stacked[1], stacked[2] if weights is not None else None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor,
                 weights: torch.Tensor | None = None, size=None):
        """Augmented copies of a 3D batch (``size``: unused, the patches are cut at the
        size the model sees)."""
        cfg = self.config
        if cfg.flips:
            images, labels, weights = self.flip(images, labels, weights)
        if cfg.elastic_sigma > 0:
            grid = elastic_grid_3d(images.shape[0], tuple(images.shape[-3:]),
                                   cfg.elastic_sigma, cfg.elastic_grid, self.anisotropy,
                                   self.generator, self.device)
            images, labels, weights = warp_3d(images, labels, grid, weights)
        if cfg.intensity > 0:
            images = self._intensity(images)
        return images, labels, weights
