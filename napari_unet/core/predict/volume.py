"""Predicting volumes with a 3D model: 3D tiles with smoothly blended overlaps, at the
model's training voxel size, and the slab around one slice for a live preview.

:class:`VolumePredictor` normalises a volume as a whole (as it was trained), zooms it to
the voxel size the model was trained at when the volume's differs (and the
probabilities back), cuts it into as few voxels of equal 3D tiles as a memory budget
per tile allows, neighbours sharing a margin of a few voxels
(:func:`~.volume_layout.volume_layout`), and blends them with a weight that falls
smoothly towards each tile's faces. Labels are decided as in 2D
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

from napari_unet.core.config import volume_defaults
from napari_unet.core.decision import FOREGROUND_THRESHOLD, check_threshold, decide
from napari_unet.core.errors import InputError
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.device import autocast, keep_freed_memory, select_device
from napari_unet.core.predict.tiles import Prediction
from napari_unet.core.predict.uncertainty import uncertainty as pixel_uncertainty
from napari_unet.core.predict.volume_layout import VolumeLayout, default_margin, volume_layout
from napari_unet.core.voxels import VoxelSize, check_voxel_size

log = logging.getLogger(__name__)
ProgressCallback = Callable[[int, int], None]
#: Voxel sizes within this relative difference of the model's are predicted as they are.
VOXEL_TOLERANCE = 0.1
#: Bytes per voxel of a tile per base channel of the model that a tile's memory budget
#: counts: 640 at 16 base channels, of which the forward pass itself takes 340-380 at
#: its peak on a CPU (510 before the Up blocks stopped concatenating at inference;
#: ``VmHWM``), the rest the blending and the allocator's slack on whole blocks.
TILE_BYTES_PER_CHANNEL = 40


def tile_voxels_for(bundle: ModelBundle, tile_bytes: int) -> int:
    """How many voxels a tile of ``bundle``'s model may hold in ``tile_bytes`` of memory
    (:data:`TILE_BYTES_PER_CHANNEL` per base channel and voxel)."""
    return max(1, int(tile_bytes) // (TILE_BYTES_PER_CHANNEL * bundle.config.base_channels))


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


def zoomed_shape(bundle: ModelBundle, shape: tuple[int, ...], voxel_size: VoxelSize | None,
                 ) -> tuple[int, int, int] | None:
    """The (z, y, x) shape at which ``bundle``'s 3D model predicts a volume of ``shape``
    (z, y, x) at ``voxel_size``: zoomed to the model's training voxel size, at least one
    pooling grid; ``None`` when it predicts it as it is (the same voxel size, or either
    unknown)."""
    factors = zoom_factors(voxel_size, bundle.voxel_size)
    if factors is None:
        return None
    return tuple(max(int(m), int(round(n * f))) for n, f, m in  # type: ignore[return-value]
                 zip(shape[-3:], factors, bundle.config.multiple))


def zoom_text(bundle: ModelBundle, shape: tuple[int, ...], voxel_size: VoxelSize | None,
              ) -> str | None:
    """In words, how a volume of ``shape`` (z, y, x) is zoomed to the model's voxel size
    to be predicted (``None``: it is not): the command line and the plugin say it before
    they start, as a volume of coarser voxels grows by the product of the factors."""
    target = zoomed_shape(bundle, shape, voxel_size)
    if target is None:
        return None
    sizes = tuple(int(n) for n in shape[-3:])
    model = " x ".join(f"{v:g}" for v in bundle.voxel_size)
    ratio = float(np.prod(target)) / max(float(np.prod(sizes)), 1.0)
    return (f"zoomed to the model's voxel size ({model} µm): {sizes} -> {target} voxels "
            f"({ratio:.3g}x as many)")


class VolumePredictor:
    """Predicts (Z, Y, X) volumes, or (Z, C, Y, X) with channels, with a 3D model.

    Tiles: as few voxels predicted as ``tile_voxels`` per tile allows
    (:func:`~.volume_layout.volume_layout`; by default from the device's
    ``volume_defaults().tile_bytes`` and the model's width: about 0.84 million voxels,
    512 MB, at 16 base channels on a CPU), at most ``tile`` (z, y, x) when given, neighbours
    sharing ``margin`` voxels per axis (by default two cells of the pooling grid:
    :func:`~.volume_layout.default_margin`), blended; ``rescale``: zoom to the model's
    training voxel size when the volume's differs.
    """

    def __init__(self, bundle: ModelBundle, *, device: str | torch.device = "auto",
                 tile: tuple[int, int, int] | None = None,
                 margin: tuple[int, int, int] | None = None, tile_voxels: int | None = None,
                 foreground_threshold: float = FOREGROUND_THRESHOLD, rescale: bool = True,
                 mixed_precision: bool = True, model: torch.nn.Module | None = None):
        if bundle.dims != 3:
            raise InputError("this is a 2D model: it predicts slices, not volumes (use "
                             "--dims 2d, or train a 3D model)")
        keep_freed_memory()
        self.bundle = bundle
        self.device = select_device(device) if isinstance(device, str) else device
        # a model of its own has its batch norms folded in (less memory, the same outputs); a
        # model handed in is shared with its trainer: left as it is
        own = bundle.build_model().fold_batch_norms() if model is None else model
        self.model = own.to(self.device)
        self.model.eval()
        # oneDNN's 3D convolutions are about a quarter faster on channels-last volumes
        self.channels_last = model is None and self.device.type == "cpu"
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)
        self.multiple = bundle.config.multiple
        self.tile = None if tile is None else tuple(
            max(m, int(t) // m * m) for t, m in zip(tile, self.multiple))
        self.margin = default_margin(self.multiple) if margin is None else tuple(
            max(0, int(v)) for v in margin)
        if tile_voxels is None:
            tile_voxels = tile_voxels_for(bundle, volume_defaults(self.device.type).tile_bytes)
        self.tile_voxels = max(1, int(tile_voxels))
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

    def volume_stats(self, volume) -> list[tuple[float, float] | None] | None:
        """:func:`volume_stats` with the model's normalisation."""
        return volume_stats(self.bundle.normalisation, volume)

    def normalised(self, volume: np.ndarray, stats=None) -> np.ndarray:
        """(C, Z, Y, X) float32, normalised as the model was trained (with ``stats``,
        per channel as :meth:`volume_stats` gives them, instead of the percentiles of
        ``volume``)."""
        volume = np.asarray(volume)
        if self.bundle.normalisation.per_slice:  # a slab's slices are the volume's
            stats = None
        if stats is None and self.stats is not None and volume.ndim == 3:
            stats = [self.stats]  # the blocks of a volume larger than memory
        if stats is not None:
            norm = self.bundle.normalisation
            if volume.ndim == 3:
                return norm.normalise(volume, stats[0])[None]
            return np.stack([norm.normalise(volume[:, c], s) for c, s in enumerate(stats)])
        x = self.bundle.normalisation.apply(volume)
        return x[None] if x.ndim == 3 else np.ascontiguousarray(np.moveaxis(x, 1, 0))

    @torch.no_grad()
    def _forward(self, tile: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(tile))[None].to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with autocast(self.device, self.mixed_precision):
            logits = self.model(x)
        return np.ascontiguousarray(torch.softmax(logits.float(), dim=1)[0].cpu().numpy())

    def layout(self, sizes: tuple[int, int, int]) -> VolumeLayout:
        """The tiles of a (Z, Y, X) volume of ``sizes``."""
        return volume_layout(tuple(int(n) for n in sizes), self.multiple, self.margin,
                             self.tile_voxels, self.tile)

    def tiled(self, x: np.ndarray, progress: ProgressCallback | None = None) -> np.ndarray:
        """Probabilities (K, Z, Y, X) of a normalised (C, Z, Y, X) volume, tile by tile."""
        sizes = x.shape[1:]
        layout = self.layout(sizes)
        corners = layout.corners
        if len(corners) == 1:  # one tile: no blending, no second copy of the volume
            probs = self._forward(x)
            if progress is not None:
                progress(1, 1)
            return probs
        window = layout.window()
        k = self.bundle.n_classes
        out = np.zeros((k, *sizes), np.float32)
        weight = np.zeros(sizes, np.float32)
        for i, corner in enumerate(corners):
            region = tuple(slice(s, s + t) for s, t in zip(corner, layout.shape))
            probs = self._forward(x[(slice(None), *region)])
            got = probs.shape[1:]
            w = window[: got[0], : got[1], : got[2]]
            sub = tuple(slice(s, s + g) for s, g in zip(corner, got))
            probs *= w
            out[(slice(None), *sub)] += probs
            weight[sub] += w
            if progress is not None:
                progress(i + 1, len(corners))
        out /= np.maximum(weight, 1e-8)
        return out

    def probabilities(self, volume: np.ndarray, voxel_size: VoxelSize | None = None,
                      progress: ProgressCallback | None = None, stats=None) -> np.ndarray:
        """Class probabilities (K, Z, Y, X) of a volume at ``voxel_size`` (z, y, x),
        zoomed to the model's training voxel size and back when they differ
        (``stats``: see :meth:`normalised`)."""
        self.check_volume(volume)
        if voxel_size is not None:
            voxel_size = check_voxel_size(voxel_size)
        x = self.normalised(volume, stats)
        sizes = x.shape[1:]
        target = self.zoomed_shape(sizes, voxel_size)
        if target is None:
            return self.tiled(x, progress)
        log.info("volume zoomed from %s to %s voxels (the model's voxel size)", sizes, target)
        zoomed = F.interpolate(torch.from_numpy(x)[None], size=target, mode="trilinear",
                               align_corners=False)[0].numpy()
        probs = self.tiled(zoomed, progress)
        back = F.interpolate(torch.from_numpy(probs)[None], size=sizes, mode="trilinear",
                             align_corners=False)[0]
        return (back / back.sum(0, keepdim=True).clamp(min=1e-8)).numpy()

    def zoomed_shape(self, shape: tuple[int, ...], voxel_size: VoxelSize | None,
                     ) -> tuple[int, int, int] | None:
        """:func:`zoomed_shape` of this predictor's model (``None`` with ``rescale``
        off)."""
        return zoomed_shape(self.bundle, shape, voxel_size) if self.rescale else None

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
        return self.bundle.splits_instances

    def slab_range(self, n: int, z: int, voxel_size: VoxelSize | None = None,
                   depth: int | None = None) -> tuple[int, int]:
        """The slices ``(start, stop)`` of ``n`` that :meth:`slab` reads around ``z``:
        :func:`slab_range` of the model."""
        factors = zoom_factors(voxel_size, self.bundle.voxel_size) if self.rescale else None
        return slab_range(self.bundle, n, z, None if factors is None else factors[0], depth)

    def slab(self, volume: np.ndarray, z: int, voxel_size: VoxelSize | None = None,
             depth: int | None = None, stats=None) -> Prediction:
        """The prediction of slice ``z`` from the thinnest slab around it that the model
        reads (:func:`slab_range`), in one forward pass for slices up to about a
        million voxels (larger ones in xy tiles): the live preview while a 3D model
        trains. Only the slab is normalised and zoomed, never the volume: with
        ``stats`` (:meth:`volume_stats`, computed once per volume) it is normalised as
        the whole volume would be, without them by its own percentiles. Labels (Y, X),
        probabilities (K, Y, X)."""
        n = int(np.shape(volume)[0])
        if not 0 <= z < n:
            raise InputError(f"slice {z} is outside the volume's {n} slices")
        start, stop = self.slab_range(n, z, voxel_size, depth)
        slab = np.asarray(volume[start:stop])
        probs = self.probabilities(slab, voxel_size, stats=stats)[:, z - start]
        return Prediction(self.labels(probs), np.ascontiguousarray(probs), None)


def volume_stats(normalisation, volume) -> list[tuple[float, float] | None] | None:
    """Per channel, the (offset, scale) that normalise the whole ``volume`` (Z, Y, X)
    or (Z, C, Y, X), numpy or lazy (dask, zarr: from a sample of its chunks), as
    ``normalisation`` does: what the live preview computes once per volume and gives
    :meth:`VolumePredictor.slab` at every call. None for a normalisation per slice."""
    from napari_unet.core.normalise import sample_chunks

    if normalisation.per_slice:  # each slice by its own: a slab is normalised as in the volume
        return None
    shape = np.shape(volume)
    channels = [volume] if len(shape) == 3 else [volume[:, c] for c in range(shape[1])]
    return [normalisation.stats(c) if isinstance(c, np.ndarray)
            else normalisation.stats(sample_chunks(c)) for c in channels]


def slab_range(bundle: ModelBundle, n: int, z: int, z_zoom: float | None = None,
               depth: int | None = None) -> tuple[int, int]:
    """The slices ``(start, stop)`` of a volume of ``n`` around slice ``z`` that the
    live preview predicts: ``depth`` slices of the model's voxel size, by default the
    model's z pooling grid, at least 4 (the 3 x 3 x 3 convolutions of the first level
    then see the slice's neighbours on both sides), as many of the volume's own slices
    as that is when it is zoomed by ``z_zoom`` along z."""
    smallest = int(bundle.config.multiple[0])
    depth = int(depth or max(4, smallest))
    depth = -(-depth // smallest) * smallest
    if z_zoom is not None:
        depth = int(np.ceil(depth / z_zoom))
    depth = max(1, min(n, depth))
    start = int(np.clip(z - depth // 2, 0, n - depth))
    return start, start + depth
