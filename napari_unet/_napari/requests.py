"""What the GUI thread hands a training or prediction worker: arrays it copied and how
to use them (:mod:`.jobs` and :mod:`.volume_jobs` run them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_unet.core.config import MIN_OBJECT_SIZE, TrainOptions
from napari_unet.core.decision import FOREGROUND_THRESHOLD

if TYPE_CHECKING:
    from napari_unet.core.models.checkpoint import ModelBundle


@dataclass(frozen=True)
class TrainRequest:
    """Arrays copied on the GUI thread, and how to train on them."""

    images: list[np.ndarray]
    annotations: list[np.ndarray]
    weights: list[np.ndarray | None]
    bundle: ModelBundle | None  # None: a new model, as ``options`` say
    options: TrainOptions = field(default_factory=TrainOptions)
    class_names: list[str] = field(default_factory=list)
    class_colors: list[str] = field(default_factory=list)
    snapshot_every: float = 3.0  # seconds between weight copies for the live preview
    # 3: train a 3D model on the volumes (Z, Y, X) at ``voxel_size`` (z, y, x µm; None:
    # unknown); 2: a 2D model on their slices.
    dims: int = 2
    voxel_size: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class PredictRequest:
    image: np.ndarray  # 2D, (Z, Y, X) or (Z, C, Y, X), copied on the GUI thread
    bundle: ModelBundle
    slices: list[int] | None = None
    probabilities: bool = False
    instances: bool = False
    min_size: int = MIN_OBJECT_SIZE
    device: str = "auto"
    foreground_threshold: float = FOREGROUND_THRESHOLD  # foreground: 1 - p(background) >= it
    rescale: str | float = "auto"  # how each slice is sized for the model (core.scale)
    # The labels' shape: a 2D image or one slice of several channels, given as (1, C, Y,
    # X), gives labels (1, Y, X) that this makes (Y, X) again; None: as they come.
    shape: tuple[int, ...] | None = None
    uncertainty: bool = False  # also the uncertainty of every pixel (core.predict.uncertainty)
    # A 3D model: the volume's voxel size (z, y, x µm; None: the model's), and for the
    # live preview the slice of ``image`` (a slab of the volume) to predict.
    voxel_size: tuple[float, float, float] | None = None
    slab_z: int | None = None
    # ... and the whole volume's normalisation (per channel: offset, scale), computed
    # once per volume (core.predict.volume.volume_stats), not from the slab.
    stats: tuple | None = None
    # A 2D model on a volume: its objects of each slice joined across z (3D objects).
    stitch: bool = False
