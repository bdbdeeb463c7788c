"""Batched, seeded, paired augmentation on the training device.

One ``grid_sample`` call per batch applies, per sample, a random element of the
dihedral group (flips and 90-degree rotations) and the elastic deformation of the
U-Net paper: random displacements on a coarse grid, smoothly (bicubically) interpolated
to a dense field, and with ``zoom`` a random scale per sample (patches are then cut
larger than the model sees them, so that zooming out finds real context, not a
reflection). The same sampling grid moves image and labels; the image is sampled
bilinearly and the labels by nearest neighbour, so label values stay exactly the set
they were. Intensity jitter (gain, offset, gamma, noise) touches the image only.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from napari_unet.core.config import AugmentConfig

# The eight 2x2 matrices of the dihedral group acting on (x, y) normalised coordinates.
_DIHEDRAL = torch.tensor(
    [
        [[1, 0], [0, 1]], [[-1, 0], [0, 1]], [[1, 0], [0, -1]], [[-1, 0], [0, -1]],
        [[0, 1], [1, 0]], [[0, -1], [1, 0]], [[0, 1], [-1, 0]], [[0, -1], [-1, 0]],
    ],
    dtype=torch.float32,
)


@lru_cache(maxsize=32)
def _cubic_weights(n_in: int, n_out: int, device: str) -> torch.Tensor:
    """(n_out, n_in) matrix of 1D bicubic interpolation (align_corners=True).

    Bicubic interpolation is separable, so ``Wy @ coarse @ Wx.T`` equals
    ``F.interpolate(coarse, mode="bicubic")`` at a fraction of its cost.
    """
    eye = torch.eye(n_in, dtype=torch.float32).reshape(n_in, 1, n_in, 1)
    w = F.interpolate(eye, size=(n_out, 1), mode="bicubic", align_corners=True)
    return w[:, 0, :, 0].T.contiguous().to(device)


@lru_cache(maxsize=32)
def _base_grids(height: int, width: int, device: str) -> torch.Tensor:
    """The identity grid under each dihedral transform: (8, H, W, 2) as (x, y)."""
    ys = torch.linspace(-1, 1, height)
    xs = torch.linspace(-1, 1, width)
    base = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)
    return torch.einsum("kij,hwj->khwi", _DIHEDRAL, base).contiguous().to(device)


def random_field(
    batch: int, height: int, width: int, sigma: float, grid: int, generator: torch.Generator,
    device: torch.device | str = "cpu", normalised: bool = False,
) -> torch.Tensor:
    """Dense displacement field (B, H, W, 2) as (x, y), from a coarse random grid.

    In pixels, or with ``normalised`` in ``grid_sample``'s units. The field is linear in
    the coarse displacements, so those (few) are scaled rather than the dense field.
    """
    gh = max(2, round(height / grid) + 1)
    gw = max(2, round(width / grid) + 1)
    coarse = torch.randn((batch, 2, gh, gw), generator=generator, device=device)
    if normalised:  # scaled by Python numbers: a small tensor sent to a GPU would sync it
        coarse[:, 0] *= sigma * 2.0 / max(width - 1, 1)
        coarse[:, 1] *= sigma * 2.0 / max(height - 1, 1)
    else:
        coarse = coarse * sigma
    wy = _cubic_weights(gh, height, str(device))
    wx = _cubic_weights(gw, width, str(device))
    return torch.matmul(torch.matmul(wy, coarse), wx.T).permute(0, 2, 3, 1)


def cut_size(patch: int, config: AugmentConfig) -> int:
    """The side of the patches to cut so that every zoom of ``config`` (out to
    ``config.zoom`` x ``patch``) lies inside them."""
    return patch if config.zoom <= 1 else int(math.ceil(patch * config.zoom))


def sampling_grid(
    batch: int, height: int, width: int, config: AugmentConfig, generator: torch.Generator,
    device: torch.device | str = "cpu", source: tuple[int, int] | None = None,
) -> torch.Tensor:
    """The normalised (x, y) grid for ``grid_sample`` of an output of ``height`` x
    ``width`` from a centred input of ``source`` (height, width; by default the same):
    dihedral transform + elastic field + per-sample scale drawn log-uniformly between
    ``1 / config.zoom`` and ``config.zoom`` (above 1 the output shows more of the input,
    objects smaller)."""
    grid = _dihedral_elastic(batch, height, width, config, generator, device)
    src_h, src_w = source or (height, width)
    fx = (width - 1) / max(src_w - 1, 1)
    fy = (height - 1) / max(src_h - 1, 1)
    if config.zoom > 1:
        log_z = math.log(config.zoom)
        s = torch.exp((torch.rand((batch, 1, 1, 1), generator=generator, device=device)
                       * 2 - 1) * log_z)
        grid = grid * s
    if (fx, fy) != (1.0, 1.0):  # a new tensor above: scaled in place, by Python numbers
        grid[..., 0] *= fx
        grid[..., 1] *= fy
    return grid


def _dihedral_elastic(batch: int, height: int, width: int, config: AugmentConfig,
                      generator: torch.Generator, device: torch.device | str) -> torch.Tensor:
    bases = _base_grids(height, width, str(device))
    if config.flips:
        # Transposing a non-square patch would change its shape: flips only there.
        n = 8 if height == width else 4
        draws = batch if config.flips_per_sample else 1
        idx = torch.randint(0, n, (draws,), generator=generator, device=device)
        base = bases[idx]
    else:
        base = bases[:1]
    if config.elastic_sigma <= 0:
        return base.expand(batch, height, width, 2).clone()
    return base + random_field(batch, height, width, config.elastic_sigma,
                               config.elastic_grid, generator, device, normalised=True)


def apply_grid(
    images: torch.Tensor, labels: torch.Tensor, grid: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Warp images (B, C, H, W) bilinearly and labels (B, H, W) by nearest neighbour."""
    out_img = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                            align_corners=True)
    lab = labels.unsqueeze(1).to(grid.dtype)
    out_lab = F.grid_sample(lab, grid, mode="nearest", padding_mode="reflection",
                            align_corners=True)
    out_lab = out_lab.squeeze(1).to(labels.dtype)  # nearest: exact integer values
    out_w = None
    if weights is not None:
        out_w = F.grid_sample(weights.unsqueeze(1), grid, mode="nearest",
                              padding_mode="reflection", align_corners=True).squeeze(1)
    return out_img, out_lab, out_w


class Augmenter:
    """Seeded paired augmentation of batches on one device."""

    def __init__(self, config: AugmentConfig | None = None, seed: int = 0,
                 device: torch.device | str = "cpu"):
        self.config = config or AugmentConfig()
        self.device = torch.device(device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def __call__(
        self, images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None,
        size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Augmented copies of a batch; ``size``: the side of the output, from the centre
        of larger inputs (cut by :func:`cut_size`)."""
        b, c, h, w = images.shape
        cfg = self.config
        out_h, out_w = (h, w) if size is None else (min(size, h), min(size, w))
        if cfg.flips or cfg.elastic_sigma > 0 or cfg.zoom > 1 or (out_h, out_w) != (h, w):
            grid = sampling_grid(b, out_h, out_w, cfg, self.generator, self.device,
                                 source=(h, w))
            images, labels, weights = apply_grid(images, labels, grid, weights)
        if cfg.intensity > 0:
            images = self._intensity(images)
        return images, labels, weights

    def _intensity(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        g = self.generator
        s = self.config.intensity

        shape = (b,) + (1,) * (x.ndim - 1)  # one draw per sample, 2D or 3D

        def u(lo: float, hi: float) -> torch.Tensor:
            r = torch.rand(shape, generator=g, device=self.device)
            return lo + (hi - lo) * r

        gamma = torch.exp(u(-s, s))
        x = torch.sign(x) * x.abs().pow(gamma)
        x = x * u(1 - s, 1 + s) + u(-s / 2, s / 2)
        if self.config.noise > 0:
            x = x + torch.randn(x.shape, generator=g, device=self.device) * (
                self.config.noise * u(0, 1)
            )
        return x
