"""Training a 3D U-Net on volumes: plan (:func:`plan_volume_training`) and
:class:`VolumeTrainer`, the 2D :class:`~.trainer.Trainer` with 3D patches
(:class:`~.volume_data.VolumeSampler`), 3D augmentation on the device
(:class:`~.augment3d.VolumeAugmenter`) and the same loss, schedule, Progress
generator, stop / pause / resume and model bundles.

The model's pooling per level comes from the voxel size (:func:`.voxels.volume_pools`:
no pooling along z while z is coarser than xy) and is recorded in its architecture; the
voxel size it trained at is recorded in the bundle, so prediction rescales volumes of
another voxel size (:mod:`napari_unet.core.predict.volume`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from napari_unet.core.config import TrainConfig, TrainOptions, UNetConfig, volume_defaults
from napari_unet.core.errors import InputError
from napari_unet.core.labels import border_weights, painted_objects
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.device import select_device
from napari_unet.core.train.augment3d import VolumeAugmenter
from napari_unet.core.train.batches import HostBatches
from napari_unet.core.train.trainer import Trainer
from napari_unet.core.train.volume_data import VOLUME_NORMALISATION, VolumeData, VolumeSampler
from napari_unet.core.voxels import VoxelSize, anisotropy, patch_shape, volume_pools


@dataclass(frozen=True)
class VolumePlan:
    """What a :class:`VolumeTrainer` needs."""

    bundle: ModelBundle
    data: VolumeData
    config: TrainConfig
    patch: tuple[int, int, int]


def volume_architecture(options: TrainOptions, n_classes: int, voxel_size: VoxelSize | None,
                        device_kind: str = "cpu", in_channels: int = 1) -> UNetConfig:
    """A new 3D model: the width and depth chosen or the 3D defaults, pooled per level
    by the voxel size."""
    d = volume_defaults(device_kind)
    depth = options.depth or d.depth
    return UNetConfig(in_channels=in_channels, n_classes=max(n_classes, 2),
                      base_channels=options.base_channels or d.base_channels, depth=depth,
                      bilinear=options.bilinear, dims=3, pools=volume_pools(voxel_size, depth))


def volume_start_bundle(options: TrainOptions, n_classes: int, voxel_size: VoxelSize | None,
                        in_channels: int = 1) -> ModelBundle:
    """A new 3D model that starts as the shipped 2D nuclei model applied slice by slice
    (:func:`~napari_unet.core.models.inflate.inflate`), pooled per level by the voxel
    size: what strokes and dense labels train by default
    (:attr:`~napari_unet.core.config.TrainOptions.volume_starts_from_nuclei`;
    ``--start-model none``: random weights)."""
    from napari_unet.core.models.inflate import inflate
    from napari_unet.core.train.plan import start_bundle

    flat = start_bundle(options.labels_kind, n_classes).with_channels(in_channels)
    return inflate(flat, volume_pools(voxel_size, flat.config.depth),
                   normalisation=VOLUME_NORMALISATION, voxel_size=voxel_size)


def volume_train_config(options: TrainOptions, device_kind: str = "cpu", *,
                        trained_start: bool = False) -> TrainConfig:
    """The training settings of a 3D run: as in 2D, with the 3D defaults for what the
    user left open (batch size, learning rate, elastic strength). ``trained_start``: the
    model starts from trained weights (the inflated nuclei model, or a 3D model
    continued); dense labels then train at the lower ``start_learning_rate``."""
    d = volume_defaults(device_kind)
    dense = options.labels_kind != "annotation"
    default_rate = d.start_learning_rate if trained_start and dense else d.learning_rate
    config = options.train_config(device_kind)
    augment = config.augment
    if options.elastic_sigma is None:
        augment = replace(augment, elastic_sigma=d.elastic_sigma)
    return replace(config, batch_size=options.batch_size or d.batch_size,
                   patch_size=options.patch_size or d.patch_side,
                   learning_rate=options.learning_rate or default_rate,
                   augment=replace(augment, zoom=1.0))


def plan_volume_training(
    volumes: Sequence[np.ndarray],
    annotations: Sequence[np.ndarray],
    options: TrainOptions,
    *,
    voxel_size: VoxelSize | None = None,
    objects: Sequence[np.ndarray | None] | None = None,
    weights: Sequence[np.ndarray | None] | None = None,
    resume: ModelBundle | None = None,
    class_names: Sequence[str] = (),
    class_colors: Sequence[str] = (),
) -> VolumePlan:
    """The model, data and settings of one 3D run on ``volumes`` (Z, Y, X) or (Z, C, Y,
    X) with sparse ``annotations`` (Z, Y, X) at ``voxel_size`` (z, y, x; None: cubic
    voxels, or the resumed model's). ``resume`` continues a 3D model (its normalisation,
    pooling and voxel size); ``objects`` are instance masks for the border weights."""
    if resume is not None and resume.dims != 3:
        raise InputError("the model to continue is a 2D model: train a new 3D model, or "
                         "train it on slices (--dims 2d)")
    device_kind = select_device(options.device).type
    if voxel_size is None and resume is not None:
        voxel_size = resume.voxel_size
    n = len(volumes)
    weights = list(weights) if weights is not None else [None] * n
    if options.border_weights:  # per slice, as in 2D: the gaps between touching objects
        objects = list(objects) if objects is not None else [None] * n
        weights = [border_weights(painted_objects(a) if o is None else o)
                   * (1.0 if w is None else w)
                   for a, o, w in zip(annotations, objects, weights)]
    data = VolumeData.from_annotations(
        volumes, annotations, voxel_size=voxel_size, weights=weights,
        normalisation=None if resume is None else resume.normalisation)
    n_classes = max(data.n_classes, len(class_names), 2)
    if resume is None and options.volume_starts_from_nuclei:
        bundle = volume_start_bundle(options, n_classes, voxel_size, data.n_channels)
    elif resume is None:
        config = volume_architecture(options, n_classes, voxel_size, device_kind,
                                     data.n_channels)
        bundle = ModelBundle.new(config, options.labels_kind, seed=options.seed,
                                 normalisation=VOLUME_NORMALISATION, voxel_size=voxel_size)
    else:
        if resume.in_channels != data.n_channels:
            raise InputError(f"the model reads {resume.in_channels} channels but the volumes "
                             f"have {data.n_channels}")
        bundle = resume.with_classes(n_classes)
    if data.n_channels > 1:
        bundle = replace(bundle, channels=options.channels or tuple(range(data.n_channels)))
    if len(class_names) >= bundle.n_classes:
        bundle = replace(bundle, class_names=list(class_names[: bundle.n_classes]),
                         class_colors=list(class_colors[: bundle.n_classes]))
    trained_start = resume is not None or options.volume_starts_from_nuclei
    config = volume_train_config(options, device_kind, trained_start=trained_start)
    d = volume_defaults(device_kind)
    patch = patch_shape(config.patch_size, voxel_size, bundle.config.level_pools,
                        max_depth=d.max_depth if options.patch_size is None else None)
    return VolumePlan(bundle=bundle, data=data, config=config, patch=patch)


class VolumeTrainer(Trainer):
    """Trains a 3D model bundle on :class:`~.volume_data.VolumeData` with patches of
    ``patch`` (z, y, x) voxels; everything else as :class:`~.trainer.Trainer`."""

    def __init__(self, bundle: ModelBundle, data: VolumeData, config: TrainConfig | None = None,
                 patch: tuple[int, int, int] = (16, 64, 64)):
        if bundle.dims != 3:
            raise InputError("a VolumeTrainer trains 3D models")
        self.patch = tuple(int(p) for p in patch)
        super().__init__(bundle, data, config)
        self.voxel_size = data.voxel_size or bundle.voxel_size

    @classmethod
    def from_plan(cls, plan: VolumePlan) -> VolumeTrainer:
        return cls(plan.bundle, plan.data, plan.config, plan.patch)

    def _make_sampler(self, data, bundle, balance):
        return VolumeSampler(data.train, bundle.n_classes, self.patch,
                             seed=self.config.seed + bundle.iterations, balance=balance)

    def _make_augmenter(self, bundle):
        return VolumeAugmenter(self.config.augment, seed=self.config.seed + bundle.iterations,
                               device=self.device,
                               anisotropy=anisotropy(self.data.voxel_size or bundle.voxel_size))

    def _object_size(self, data, bundle):
        return bundle.object_size  # volumes are rescaled by their voxel size instead

    def _batch_source(self):
        return HostBatches(self.sampler, self.config.batch_size,
                           pin=self.device.type == "cuda")

    def _record(self, seconds: float) -> None:
        super()._record(seconds)
        self._history_entry.update(patch_shape=list(self.patch), dims=3,
                                   voxel_size=None if self.voxel_size is None
                                   else list(self.voxel_size))

    @torch.no_grad()
    def validate(self, *args, **kwargs) -> float | None:
        return None  # nothing is held out of volumes
