"""Predicting volumes with a 3D model: 3D tiles with smoothly blended overlaps, at the
model's training voxel size, and the slab around one slice for a live preview.

:class:`VolumePredictor` normalises a volume as a whole (as it was trained), zooms it to
the voxel size the model was trained at when the volume's differs (and the
probabilities back), cuts it into equal overlapping 3D tiles aligned to the model's
pooling grid (:func:`~.tiles.tile_starts` per axis), and blends them with a weight that
falls smoothly towards each tile's faces. Labels are decided as in 2D
(:func:`~napari_unet.core.decision.decide`); 3D objects come from
:mod:`.volume_instances`. Volumes larger than memory go block by block
(:mod:`.volume_blocks`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from napari_unet.core.decision import FOREGROUND_THRESHOLD, check_threshold, decide
from napari_unet.core.errors import InputError
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.device import autocast, keep_freed_memory, select_device
from napari_unet.core.predict.tiles import Prediction, tile_starts
from napari_unet.core.predict.uncertainty import uncertainty as pixel_uncertainty
from napari_unet.core.voxels import VoxelSize, check_voxel_size

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
#: Voxel sizes within this relative difference of the model's are predicted as they are.
VOXEL_TOLERANCE = 0.1


def blend_window_3d(shape: tuple[int, int, int], ramps: tuple[int, int, int]) -> np.ndarray:
    """(Z, Y, X) weights: 1 inside, a sin^2 ramp of ``ramps`` voxels at each face."""
    axes = []
    for n, ramp in zip(shape, ramps):
        v = np.ones(n, np.float32)
        ramp = min(ramp, n // 2)
        if ramp > 0:
            r = np.arange(ramp, dtype=np.float32)
            edge = np.sin(0.5 * np.pi * (r + 0.5) / ramp) ** 2
            v[:ramp] = edge
            v[n - ramp:] = edge[::-1]
        axes.append(np.maximum(v, 1e-4))
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


def zoom_factors(image_voxel: VoxelSize | None, model_voxel: VoxelSize | None,
                 ) -> tuple[float, float, float] | None:
    """How much to zoom a volume along (z, y, x) to the model's voxel size (> 1: more
    voxels); None when either is unknown or they agree within :data:`VOXEL_TOLERANCE`."""
    if image_voxel is None or model_voxel is None:
        return None
    f = tuple(a / b for a, b in zip(image_voxel, model_voxel))
    if all(abs(v - 1) <= VOXEL_TOLERANCE for v in f):
        return None
    return f  # type: ignore[return-value]


class VolumePredictor:
    """Predicts (Z, Y, X) volumes, or (Z, C, Y, X) with channels, with a 3D model.

    ``tile``: the tile (z, y, x) in voxels (rounded to the pooling grid; by default 16
    x 256 x 256 on a CPU, 64 x 256 x 256 on a GPU); ``overlap``: the share of a tile's
    side that neighbours share (blended); ``rescale``: zoom to the model's training
    voxel size when the volume's differs.
    """

    def __init__(self, bundle: ModelBundle, *, device: str | torch.device = "auto",
                 tile: tuple[int, int, int] | None = None, overlap: float = 0.25,
                 foreground_threshold: float = FOREGROUND_THRESHOLD, rescale: bool = True,
                 mixed_precision: bool = True, model: torch.nn.Module | None = None):
        if bundle.dims != 3:
            raise InputError("this is a 2D model: it predicts slices, not volumes (use "
                             "--dims 2d, or train a 3D model)")
        keep_freed_memory()
        self.bundle = bundle
        self.device = select_device(device) if isinstance(device, str) else device
        self.model = (model if model is not None else bundle.build_model()).to(self.device)
        self.model.eval()
        self.multiple = bundle.config.multiple
        if tile is None:  # CPU: 16 x 256 x 256 peaks near 0.75 GB at 16 base channels
            tile = (64, 256, 256) if self.device.type == "cuda" else (16, 256, 256)
        self.tile = tuple(max(m, int(t) // m * m) for t, m in zip(tile, self.multiple))
        self.overlap = float(overlap)
        self.foreground_threshold = check_threshold(foreground_threshold)
        self.rescale = rescale
        self.mixed_precision = mixed_precision

    @property
    def smallest(self) -> tuple[int, int, int]:
        """The smallest volume (z, y, x) the model reads: one pooling grid."""
        return self.multiple

    def check_volume(self, volume) -> None:
        shape = np.shape(volume)
        if len(shape) not in (3, 4):
            raise InputError(f"a 3D model predicts volumes (Z, Y, X); this image has shape "
                             f"{tuple(shape)}: use a 2D model, or --dims 2d")
        if shape[0] < self.smallest[0]:
            raise InputError(f"the volume has {shape[0]} slices, fewer than the "
                             f"{self.smallest[0]} of the model's smallest patch: use a 2D "
                             "model (--dims 2d)")

    #: Fixed (offset, scale) of the normalisation, for blocks of a volume larger than
    #: memory (:mod:`.volume_blocks`): None normalises each volume given by its own
    #: percentiles.
    stats: tuple[float, float] | None = None

    def normalised(self, volume: np.ndarray) -> np.ndarray:
        """(C, Z, Y, X) float32, normalised as the model was trained."""
        volume = np.asarray(volume)
        if self.stats is not None and volume.ndim == 3:
            return self.bundle.normalisation.normalise(volume, self.stats)[None]
        x = self.bundle.normalisation.apply(volume)
        return x[None] if x.ndim == 3 else np.ascontiguousarray(np.moveaxis(x, 1, 0))

    @torch.no_grad()
    def _forward(self, tile: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tile))[None].to(self.device)
        with autocast(self.device, self.mixed_precision):
            logits = self.model(x)
        return torch.softmax(logits.float(), dim=1)[0].cpu().numpy()

    def tiled(self, x: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """Probabilities (K, Z, Y, X) of a normalised (C, Z, Y, X) volume, tile by tile."""
        sizes = x.shape[1:]
        layout = []
        for n, t, m in zip(sizes, self.tile, self.multiple):
            ov = max(m, int(round(t * self.overlap)) // m * m) if n > t else 0
            layout.append((*tile_starts(n, t, ov, m), ov))
        shape = tuple(t for t, _, _ in layout)
        window = blend_window_3d(shape, tuple(ov // 2 for _, _, ov in layout))
        k = self.bundle.n_classes
        out = np.zeros((k, *sizes), np.float32)
        weight = np.zeros(sizes, np.float32)
        corners = [(z, y, xx) for z in layout[0][1] for y in layout[1][1] for xx in layout[2][1]]
        for i, (z0, y0, x0) in enumerate(corners):
            region = tuple(slice(s, s + t) for s, t in zip((z0, y0, x0), shape))
            probs = self._forward(x[(slice(None), *region)])
            got = probs.shape[1:]
            w = window[: got[0], : got[1], : got[2]]
            sub = tuple(slice(s, s + g) for s, g in zip((z0, y0, x0), got))
            out[(slice(None), *sub)] += probs * w
            weight[sub] += w
            if progress is not None:
                progress(i + 1, len(corners))
        out /= np.maximum(weight, 1e-8)
        return out

    def probabilities(self, volume: np.ndarray, voxel_size: VoxelSize | None = None,
                      progress: ProgressCallback | None = None) -> np.ndarray:
        """Class probabilities (K, Z, Y, X) of a volume at ``voxel_size`` (z, y, x),
        zoomed to the model's training voxel size and back when they differ."""
        self.check_volume(volume)
        if voxel_size is not None:
            voxel_size = check_voxel_size(voxel_size)
        x = self.normalised(volume)
        factors = zoom_factors(voxel_size, self.bundle.voxel_size) if self.rescale else None
        if factors is None:
            return self.tiled(x, progress)
        sizes = x.shape[1:]
        target = tuple(max(m, int(round(n * f))) for n, f, m in
                       zip(sizes, factors, self.smallest))
        log.info("volume zoomed from %s to %s voxels (the model's voxel size)", sizes, target)
        zoomed = F.interpolate(torch.from_numpy(x)[None], size=target, mode="trilinear",
                               align_corners=False)[0].numpy()
        probs = self.tiled(zoomed, progress)
        back = F.interpolate(torch.from_numpy(probs)[None], size=sizes, mode="trilinear",
                             align_corners=False)[0]
        return (back / back.sum(0, keepdim=True).clamp(min=1e-8)).numpy()

    def labels(self, probs: np.ndarray) -> np.ndarray:
        return decide(probs, self.foreground_threshold).astype(np.uint8)

    def predict(self, volume: np.ndarray, voxel_size: VoxelSize | None = None, *,
                probabilities: bool = False, instances: bool = False, min_size: int = 10,
                progress: ProgressCallback | None = None,
                uncertainty: bool = False) -> Prediction:
        """Labels (Z, Y, X), with ``instances`` one id per 3D object
        (:func:`~.volume_instances.volume_instances`), with ``probabilities`` (Z, K, Y,
        X) as the 2D predictor gives them for stacks, with ``uncertainty`` each voxel's
        (Z, Y, X) float32 in [0, 1] (:mod:`.uncertainty`)."""
        from napari_unet.core.predict.volume_instances import volume_instances

        probs = self.probabilities(volume, voxel_size, progress)
        labels = self.labels(probs)
        objects = None
        if instances:
            objects = volume_instances(probs, labels, voxel_size or self.bundle.voxel_size,
                                       splits=self.splits_instances, min_size=min_size)
        return Prediction(labels, np.moveaxis(probs, 0, 1) if probabilities else None, objects,
                          uncertainty=pixel_uncertainty(probs) if uncertainty else None)

    @property
    def splits_instances(self) -> bool:
        """Whether the model was trained on instance masks (background / interior /
        boundary), whose sure interiors seed the objects."""
        return self.bundle.label_kind == "instance" and self.bundle.n_classes == 3

    def slab(self, volume: np.ndarray, z: int, voxel_size: VoxelSize | None = None,
             depth: int | None = None) -> Prediction:
        """The prediction of slice ``z`` from a slab of ``depth`` slices around it (by
        default the model's z pooling, at least 4 slices), in one tile up to 512 x 512
        pixels: the live preview while a 3D model trains, without predicting the whole
        volume. Labels (Y, X), probabilities (K, Y, X)."""
        volume = np.asarray(volume)
        n = volume.shape[0]
        if not 0 <= z < n:
            raise InputError(f"slice {z} is outside the volume's {n} slices")
        depth = depth or max(4, self.smallest[0])
        depth = min(n, -(-depth // self.smallest[0]) * self.smallest[0])
        z0 = int(np.clip(z - depth // 2, 0, n - depth))
        slab = volume[z0 : z0 + depth]
        tile, overlap = self.tile, self.overlap
        h, w = slab.shape[-2:]
        self.tile = tuple(max(m, -(-t // m) * m) for t, m in
                          zip((depth, min(h, 512), min(w, 512)), self.multiple))
        self.overlap = 0.125
        try:
            probs = self.probabilities(slab, voxel_size)[:, z - z0]
        finally:
            self.tile, self.overlap = tile, overlap
        return Prediction(self.labels(probs), probs, None)
