"""Settings as plain, torch-free records, validated when built, and the defaults.

One source of truth for the command line, the GUI and the benchmarks: the architecture
(:class:`UNetConfig`), augmentation (:class:`AugmentConfig`) and training
(:class:`TrainConfig`) settings; the user's choices (:class:`TrainOptions`, from the
command line's options or the GUI's form, ``None`` meaning "the default"); and the
defaults per kind of labels and device (:func:`defaults_for`). Planning a run from them
(:func:`napari_unet.core.train.plan.plan_training`) is one function too. Nothing here imports
torch, so the GUI builds and checks settings on its own thread for free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from napari_unet.core.errors import InputError

LabelsKind = Literal["annotation", "semantic", "instance"]
LABELS_KINDS: tuple[str, ...] = ("annotation", "semantic", "instance")

#: The largest zoom of the scale augmentation (``AugmentConfig.zoom``).
MAX_ZOOM = 8.0
#: The strongest intensity augmentation (``AugmentConfig.intensity``): gains stay positive.
MAX_INTENSITY = 0.9
#: Weight of the edge loss for painted strokes (see ``core.train.losses.edge_loss``).
EDGE_WEIGHT = 1.0
#: Weight of the anchor to the starting model for painted strokes (``TrainConfig``).
ANCHOR_WEIGHT = 0.3
#: The shipped starting model for sparse strokes (made by scripts/pretrain.py).
START_MODEL = Path(__file__).resolve().parents[1] / "models" / "nuclei_start.pt"


@dataclass(frozen=True)
class DeviceDefaults:
    """One row of :data:`DEVICE_DEFAULTS`."""

    base_channels: int
    depth: int
    batch_size: int
    patch_size: int
    learning_rate: float
    elastic_sigma: float


#: The defaults table: a new model's width and depth and the training sizes per kind of
#: device; a CUDA GPU gets a wider model and bigger batches and patches, every other
#: device the CPU's. The records below (``UNetConfig()``, ``TrainConfig()``), the GUI's
#: form and the command line's help texts all take their defaults from here.
DEVICE_DEFAULTS = {
    "cpu": DeviceDefaults(base_channels=16, depth=4, batch_size=8, patch_size=128,
                          learning_rate=3e-3, elastic_sigma=6.0),
    "cuda": DeviceDefaults(base_channels=32, depth=4, batch_size=16, patch_size=256,
                           learning_rate=2e-3, elastic_sigma=8.0),
}
CPU = DEVICE_DEFAULTS["cpu"]
#: Prediction: the side of the tiles (pixels), the smallest object kept (pixels), and a
#: block prediction's block side and OME-Zarr chunk side (pixels, Y and X).
TILE_SIZE = 1024
MIN_OBJECT_SIZE = 10
BLOCK_SIZE = 4096
CHUNK_SIZE = 1024
#: A volume of a 3D model predicted block by block: the block (z, y, x voxels, also the
#: OME-Zarr chunks), its halo of context for the probabilities, and the context of the
#: seeds and watershed of its 3D objects (core/predict/volume_blocks.py). The halo was
#: 8 x 32 x 32: half of it costs 1.27x a block's voxels instead of 1.58x, and its block
#: faces still differ from one untiled pass less than the faces of the blended tiles
#: inside every block do (benchmarks/scale/volume_halo.py, docs/volumes.md).
VOLUME_BLOCK = (64, 512, 512)
VOLUME_HALO = (4, 16, 16)
VOLUME_OBJECT_HALO = (16, 64, 64)


@dataclass(frozen=True)
class UNetConfig:
    """The architecture, stored in every model file."""

    in_channels: int = 1
    n_classes: int = 2
    base_channels: int = CPU.base_channels
    depth: int = CPU.depth
    bilinear: bool = True  # bilinear (2D) or trilinear (3D) up-sampling, else transposed
    # 2: slices (Conv2d); 3: volumes (Conv3d), pooled per level by ``pools`` (z, y, x),
    # e.g. (1, 2, 2) where z is coarser than xy (see :func:`.voxels.volume_pools`).
    dims: int = 2
    pools: tuple[tuple[int, ...], ...] | None = None

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.n_classes < 2:
            raise ValueError("a U-Net needs at least one input channel and two classes")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, not {self.depth}")
        if self.base_channels < 2:
            raise ValueError(f"base_channels must be at least 2, not {self.base_channels}")
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, not {self.dims}")
        if self.pools is not None:
            pools = tuple(tuple(int(f) for f in level) for level in self.pools)
            if len(pools) != self.depth or any(
                    len(level) != self.dims or any(f not in (1, 2) for f in level)
                    for level in pools):
                raise ValueError(f"pools must give {self.depth} levels of {self.dims} "
                                 f"factors 1 or 2, not {self.pools!r}")
            object.__setattr__(self, "pools", pools)

    @property
    def level_pools(self) -> tuple[tuple[int, ...], ...]:
        """The pooling factor per level and spatial axis (2 everywhere unless ``pools``)."""
        return self.pools or ((2,) * self.dims,) * self.depth

    @property
    def multiple(self) -> tuple[int, ...]:
        """What each spatial side is padded to a multiple of: the product of the pools."""
        out = [1] * self.dims
        for level in self.level_pools:
            out = [m * f for m, f in zip(out, level)]
        return tuple(out)

    def to_dict(self) -> dict:
        """The fields as plain values; a 2D model's without ``dims`` and ``pools``, so
        2D model files stay as they were."""
        out = asdict(self)
        if self.dims == 2 and self.pools is None:
            del out["dims"], out["pools"]
        elif out["pools"] is not None:
            out["pools"] = [list(level) for level in out["pools"]]
        return out


#: Architecture of the shipped starting model (tests check it against the file).
START_ARCHITECTURE = UNetConfig(in_channels=1, n_classes=2, base_channels=16, depth=4,
                                bilinear=True)  # the file's, whatever the defaults


@dataclass(frozen=True)
class AugmentConfig:
    """Strengths of the transforms; zero turns one off.

    The dihedral transform is drawn once per batch unless ``flips_per_sample`` (which
    costs a copy of the grid on the CPU); the elastic field is always drawn per sample.
    ``elastic_sigma`` is the standard deviation of the coarse displacements in pixels
    (the U-Net paper: 10 pixels on a 3x3 grid); ``elastic_grid`` the spacing of the
    coarse grid in pixels. ``intensity`` s: each sample's brightness gets a gamma
    between exp(-s) and exp(s), a gain between 1 - s and 1 + s and an offset within
    +-s/2 (0 turns it off). ``zoom`` z: each sample is shown at a scale drawn
    log-uniformly between 1/z and z (1 turns it off), so that a model learns objects of
    other sizes than those annotated.
    """

    elastic_sigma: float = CPU.elastic_sigma
    elastic_grid: int = 64
    flips: bool = True
    flips_per_sample: bool = False
    intensity: float = 0.2
    noise: float = 0.03
    zoom: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.intensity <= MAX_INTENSITY:
            raise InputError(f"the strength of the intensity augmentation must be between 0 "
                             f"and {MAX_INTENSITY:g}, not {self.intensity}")
        if not 1 <= self.zoom <= MAX_ZOOM:
            raise InputError(f"the zoom of the scale augmentation must be between 1 and "
                             f"{MAX_ZOOM:g}, not {self.zoom}")


@dataclass(frozen=True)
class TrainConfig:
    """How long and how to train. ``iterations`` and ``seconds`` both bound the run."""

    iterations: int | None = None
    seconds: float | None = None
    batch_size: int = CPU.batch_size
    patch_size: int = CPU.patch_size
    learning_rate: float = CPU.learning_rate
    weight_decay: float = 1e-4
    warmup: int = 20
    dice_weight: float = 0.0  # soft Dice added to the loss; it fattens objects on dense labels
    class_balance: float | None = None  # None: 1 for sparse strokes, less for dense labels
    edge_weight: float = 0.0  # pairwise loss putting label edges on image edges (see edge_loss)
    edge_sigma: float = 0.1  # intensity difference (normalised units) that counts as an edge
    # Keeps unannotated pixels near the prediction of the model this run starts from (a
    # KL term; for trained or pre-trained models only): long runs on a few strokes then
    # do not drift from what the starting model knew.
    anchor_weight: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    validate_every: int = 50
    seed: int = 0
    device: str = "auto"
    leave_core_free: bool = True
    checkpointing: bool = False
    mixed_precision: bool = True  # bf16 autocast where the device runs it fast

    def __post_init__(self) -> None:
        if self.iterations is not None and self.iterations < 1:
            raise InputError("the number of iterations must be at least 1")
        if self.seconds is not None and self.seconds <= 0:
            raise InputError("the time budget must be more than 0 seconds")
        if self.batch_size < 1:
            raise InputError("the batch size must be at least 1")
        if self.patch_size < 16 or self.patch_size % 16:
            raise InputError("the patch size must be a multiple of 16, at least 16")
        if not self.learning_rate > 0:
            raise InputError("the learning rate must be positive")
        if not self.edge_weight >= 0:
            raise InputError("the edge loss weight must be 0 or more")
        if not self.anchor_weight >= 0:
            raise InputError("the anchor weight must be 0 or more")
        if not self.edge_sigma > 0:
            raise InputError("the edge loss's intensity scale must be positive")

    @property
    def budget_iterations(self) -> int | None:
        if self.iterations is None and self.seconds is None:
            return 500
        return self.iterations


@dataclass(frozen=True)
class Defaults:
    """A new model's width and depth and the training settings, for one kind of labels
    on one kind of device."""

    base_channels: int
    depth: int
    train: TrainConfig


def defaults_for(labels_kind: str = "annotation", device_kind: str = "cpu") -> Defaults:
    """The defaults. Painted strokes (``annotation``) get the edge loss, which puts
    outlines on image edges across the band that strokes leave unpainted around objects
    (DSB nuclei, ``benchmarks/quality/strokes.py``: foreground IoU 0.67 -> 0.78 after 60 s), and the
    anchor to the starting model, without which long runs drift (H100, 60 s: IoU 0.70
    instead of 0.76); dense labels already say where the outline is. A CUDA GPU gets
    wider models and bigger batches and patches."""
    if labels_kind not in LABELS_KINDS:
        raise InputError(f"unknown kind of labels {labels_kind!r}; use one of "
                         f"{', '.join(LABELS_KINDS)}")
    sparse = labels_kind == "annotation"
    edge = EDGE_WEIGHT if sparse else 0.0
    anchor = ANCHOR_WEIGHT if sparse else 0.0
    d = DEVICE_DEFAULTS.get(device_kind, CPU)
    return Defaults(d.base_channels, d.depth, TrainConfig(
        batch_size=d.batch_size, patch_size=d.patch_size, learning_rate=d.learning_rate,
        edge_weight=edge, anchor_weight=anchor,
        augment=AugmentConfig(elastic_sigma=d.elastic_sigma)))


#: What a volume (a z-stack whose slices overlap) gets when the user leaves it open
#: (``--dims auto``, the plugin's *Auto* volume mode): "3d", a 3D model, or "2d", a 2D
#: model slice by slice with its objects joined across z. Measured by
#: ``benchmarks/quality/volumes.py`` (docs/volumes.md) on a 2-core CPU, 150 s from
#: strokes on 3 slices: the 3D model, which starts from the shipped nuclei model
#: inflated to 3D, was ahead of the 2D model on every set (one ovule volume, train on one
#: half, score the other: F1 of 3D objects 0.62 against 0.22).
VOLUME_MODEL = "3d"


@dataclass(frozen=True)
class VolumeDefaults:
    """A new 3D model's width and depth and its patches: ``patch_side`` pixels in xy,
    as deep as wide in micrometres up to ``max_depth`` slices
    (:func:`.voxels.patch_shape`), ``batch_size`` of them per step. On the 2-core CPU a
    16 x 64 x 64 patch trains at about the voxel rate of larger ones
    (``benchmarks/quality/volumes.py``'s speed rows) and keeps a step under a second."""

    base_channels: int
    depth: int
    patch_side: int
    max_depth: int
    batch_size: int
    learning_rate: float = 3e-3
    #: The learning rate of dense labels (instance or semantic masks) from trained
    #: weights: the nuclei model inflated to 3D (the default start) or a 3D model
    #: continued. At 3e-3 their many labelled voxels undid what those weights hold: on
    #: the ovule halves (150 s, 2-core CPU) 3e-4 gave foreground IoU 0.77 / 0.67 against
    #: 0.47 / 0.42. Strokes keep ``learning_rate`` (3e-4 lost 0.05-0.11 IoU on
    #: synthetic nuclei and ovule -> embryo); docs/volumes.md, "Learning rate from
    #: trained weights".
    start_learning_rate: float = 3e-4
    elastic_sigma: float = 4.0  # pixels in xy; z gets it divided by the anisotropy
    #: Prediction: the memory one 3D tile may take in a forward pass; the tiles hold
    #: as many voxels as that allows (:class:`~.predict.volume.VolumePredictor`). On
    #: the CPU 512 MB keeps a 512 x 1024 x 1024 volume predicted block by block under
    #: 2 GB with the batch norms folded into the convolutions: one block with its halo
    #: (72 x 544 x 544) peaks at 1.64 GB in 39 s, against 1.35 GB in 47 s at 384 MB and
    #: 1.81 GB in 40 s at 768 MB (``benchmarks/scale/volume_memory.py --tile-mb``,
    #: docs/volumes.md).
    tile_bytes: int = 512 * 2**20


def volume_defaults(device_kind: str = "cpu") -> VolumeDefaults:
    """The 3D defaults for a device: a GPU gets wider models and larger patches."""
    if device_kind == "cuda":
        return VolumeDefaults(base_channels=32, depth=4, patch_side=128, max_depth=32,
                              batch_size=4, learning_rate=2e-3, tile_bytes=5 * 2**30)
    return VolumeDefaults(base_channels=16, depth=3, patch_side=64, max_depth=16, batch_size=2)


@dataclass(frozen=True)
class TrainOptions:
    """What the user chose for one training run; ``None`` means the default for the kind
    of labels and the device (:func:`defaults_for`). The command line's options and the
    GUI's form both become one of these, so both train with the same settings."""

    labels_kind: LabelsKind = "annotation"
    iterations: int | None = None
    seconds: float | None = None
    batch_size: int | None = None
    patch_size: int | None = None
    learning_rate: float | None = None
    elastic_sigma: float | None = None
    zoom: float | None = None  # the scale augmentation's largest zoom (1: none)
    intensity: float | None = None  # the intensity augmentation's strength (0: none)
    edge_weight: float | None = None  # None: 1 for painted strokes, 0 for dense labels
    border_weights: bool = False  # the U-Net paper's weights between close objects
    # A new model: "nuclei" starts from the shipped model, "none" from random weights;
    # None: nuclei for painted strokes, none for dense labels.
    start_model: Literal["nuclei", "none"] | None = None
    base_channels: int | None = None  # new models from random weights only
    depth: int | None = None
    bilinear: bool = True
    checkpointing: bool = False
    device: str = "auto"
    seed: int = 0
    leave_core_free: bool = False  # the GUI leaves a core to the viewer
    # The channels of the images to train on, recorded in the model (the images given
    # to the planning hold these channels already); None: all the images have.
    channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.channels is not None:
            if not self.channels or any(
                    isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in self.channels):
                raise InputError(f"channels are indices from 0, not {self.channels!r}")
            if len(set(self.channels)) != len(self.channels):
                raise InputError(f"each channel may be chosen once, not {self.channels!r}")
        if self.labels_kind not in LABELS_KINDS:
            raise InputError(f"unknown kind of labels {self.labels_kind!r}; use one of "
                             f"{', '.join(LABELS_KINDS)}")
        if self.start_model not in (None, "nuclei", "none"):
            raise InputError(f"unknown starting model {self.start_model!r}; use nuclei or none")
        if self.start_model == "nuclei" and (self.base_channels is not None
                                             or self.depth is not None or not self.bilinear):
            arch = START_ARCHITECTURE
            raise InputError(
                f"the nuclei starting model fixes the architecture (base {arch.base_channels}, "
                f"depth {arch.depth}, bilinear): drop the base channels, depth and transposed up-sampling, or start "
                "from random weights (--start-model none)"
            )
        if self.depth is not None and not 1 <= self.depth <= 6:
            raise InputError(f"the depth must be between 1 and 6, not {self.depth}")
        if self.base_channels is not None and not 2 <= self.base_channels <= 256:
            raise InputError(f"the base channels must be between 2 and 256, not "
                             f"{self.base_channels}")
        if self.elastic_sigma is not None and not self.elastic_sigma >= 0:
            raise InputError("the elastic strength must be 0 or more")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise InputError(f"the seed must be a whole number from 0 to 2**63 - 1, not "
                             f"{self.seed}")
        self.train_config("cpu")  # the training settings' own checks

    @property
    def starts_from_nuclei(self) -> bool:
        """Whether a new model starts from the shipped nuclei model."""
        if self.start_model is not None:
            return self.start_model == "nuclei"
        return self.labels_kind == "annotation" and not self._shaped

    @property
    def _shaped(self) -> bool:
        return self.base_channels is not None or self.depth is not None or not self.bilinear

    @property
    def volume_starts_from_nuclei(self) -> bool:
        """Whether a new 3D model starts from the shipped nuclei model, inflated to 3D:
        for strokes and for dense labels alike (a 3D model from random weights learns
        too little in a CPU's minutes), unless chosen otherwise or shaped."""
        if self.start_model is not None:
            return self.start_model == "nuclei"
        return not self._shaped

    def architecture(self, n_classes: int, device_kind: str = "cpu",
                     in_channels: int = 1) -> UNetConfig:
        """A new model's architecture (the starting model's, when it starts from it)."""
        if self.starts_from_nuclei:
            return replace(START_ARCHITECTURE, n_classes=max(n_classes, 2),
                           in_channels=in_channels)
        d = defaults_for(self.labels_kind, device_kind)
        return UNetConfig(in_channels=in_channels, n_classes=max(n_classes, 2),
                          base_channels=self.base_channels or d.base_channels,
                          depth=self.depth or d.depth, bilinear=self.bilinear)

    def train_config(self, device_kind: str = "cpu") -> TrainConfig:
        """The training settings: the defaults with the user's choices over them."""
        d = defaults_for(self.labels_kind, device_kind).train
        chosen = {name: value for name, value in (
            ("batch_size", self.batch_size), ("patch_size", self.patch_size),
            ("learning_rate", self.learning_rate), ("edge_weight", self.edge_weight),
        ) if value is not None}
        augment = replace(d.augment, **{name: value for name, value in (
            ("elastic_sigma", self.elastic_sigma), ("zoom", self.zoom),
            ("intensity", self.intensity)) if value is not None})
        return replace(d, iterations=self.iterations, seconds=self.seconds, device=self.device,
                       seed=self.seed, leave_core_free=self.leave_core_free,
                       checkpointing=self.checkpointing, augment=augment, **chosen)

    def to_dict(self) -> dict:
        return asdict(self)
