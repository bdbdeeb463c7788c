"""Batched, seeded, paired augmentation of 3D patches on the training device.

Per sample: flips along x, y and z and a transposition of x and y (when the patch is
square in xy: with the flips, the eight rotations and reflections of the xy plane);
then the elastic deformation of :mod:`.augment` in 3D: random displacements on a
coarse grid (``elastic_grid`` pixels apart in xy, as far in micrometres along z),
trilinearly interpolated to a dense field, z displacements divided by the anisotropy
so that they are as large in micrometres as those in xy. The flips and the identity
are folded into the coarse grid, so one ``grid_sample`` moves the image (trilinear) and
one moves labels and weights together (nearest: label values stay exactly the set they
were); without the deformation the flips are exact index operations.
Intensity jitter touches the image only, as in 2D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from napari_unet.core.config import AugmentConfig
from napari_unet.core.train.augment import Augmenter


def elastic_grid_3d(batch: int, shape: tuple[int, int, int], sigma: float, grid: int,
                    anisotropy: float, generator: torch.Generator,
                    device: torch.device | str = "cpu",
                    flips: list[list[bool]] | None = None) -> torch.Tensor:
    """A sampling grid (B, Z, Y, X, 3) as (x, y, z) in ``grid_sample``'s units: the
    identity plus a smooth random field of ``sigma`` pixels (xy; z: ``sigma /
    anisotropy`` slices), after the flips per sample ``(x, y, z, transpose)`` when
    given (the flips of :meth:`VolumeAugmenter.flip`, folded into the one sampling).

    The identity and the flips are applied to the coarse grid: trilinear interpolation
    (corners aligned) carries a linear map exactly, so no dense identity is built."""
    d, h, w = shape
    gz = max(2, round(d * anisotropy / grid) + 1)
    gy = max(2, round(h / grid) + 1)
    gx = max(2, round(w / grid) + 1)
    coarse = torch.randn((batch, 3, gz, gy, gx), generator=generator, device=device)
    coarse[:, 0] *= sigma * 2.0 / max(w - 1, 1)
    coarse[:, 1] *= sigma * 2.0 / max(h - 1, 1)
    coarse[:, 2] *= sigma / anisotropy * 2.0 / max(d - 1, 1)
    coarse[:, 0] += torch.linspace(-1, 1, gx, device=device)
    coarse[:, 1] += torch.linspace(-1, 1, gy, device=device)[:, None]
    coarse[:, 2] += torch.linspace(-1, 1, gz, device=device)[:, None, None]
    for i, (fx, fy, fz, tr) in enumerate(flips or []):
        if tr and h == w:  # the transposed sample at (x, y) is the sample at (y, x)
            coarse[i, :2] = coarse[i, [1, 0]].clone()
        for axis, flag in enumerate((fx, fy, fz)):
            if flag:
                coarse[i, axis] *= -1
    field = F.interpolate(coarse, size=(d, h, w), mode="trilinear", align_corners=True)
    return field.permute(0, 2, 3, 4, 1)


def warp_3d(images: torch.Tensor, labels: torch.Tensor, grid: torch.Tensor,
            weights: torch.Tensor | None = None):
    """Images (B, C, Z, Y, X) trilinearly, labels (B, Z, Y, X) and weights by nearest."""
    out_img = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                            align_corners=True)
    # labels and weights by one nearest-neighbour sampling, as two channels
    nearest = labels.unsqueeze(1).to(grid.dtype)
    if weights is not None:
        nearest = torch.cat([nearest, weights.unsqueeze(1).to(grid.dtype)], dim=1)
    moved = F.grid_sample(nearest, grid, mode="nearest", padding_mode="reflection",
                          align_corners=True)
    out_lab = moved[:, 0].to(labels.dtype)
    out_w = moved[:, 1].to(weights.dtype) if weights is not None else None
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

    def flip_draws(self, batch: int) -> list[list[bool]]:
        """Per sample: flip along x, y, z, transpose x and y (one read per batch)."""
        return self._coin(4 * batch).reshape(batch, 4).tolist()

    def flip(self, images: torch.Tensor, labels: torch.Tensor,
             weights: torch.Tensor | None = None):
        """Per sample: flips along x, y, z, and a transposition of x and y when square."""
        b, _, _, h, w = images.shape
        draws = self.flip_draws(b)
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
        if cfg.elastic_sigma > 0:  # the flips folded into the deformation's one sampling
            flips = self.flip_draws(images.shape[0]) if cfg.flips else None
            grid = elastic_grid_3d(images.shape[0], tuple(images.shape[-3:]),
                                   cfg.elastic_sigma, cfg.elastic_grid, self.anisotropy,
                                   self.generator, self.device, flips)
            images, labels, weights = warp_3d(images, labels, grid, weights)
        elif cfg.flips:
            images, labels, weights = self.flip(images, labels, weights)
        if cfg.intensity > 0:
            images = self._intensity(images)
        return images, labels, weights
