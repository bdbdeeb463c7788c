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
#: Devices the defaults distinguish: a GPU gets bigger batches and patches.
DeviceKind = Literal["cpu", "cuda", "mps"]

#: The largest zoom of the scale augmentation (``AugmentConfig.zoom``).
MAX_ZOOM = 8.0
#: The strongest intensity augmentation (``AugmentConfig.intensity``): gains stay positive.
MAX_INTENSITY = 0.9
#: Weight of the edge loss for painted strokes (see ``core.losses.edge_loss``).
EDGE_WEIGHT = 1.0
#: Weight of the anchor to the starting model for painted strokes (``TrainConfig``).
ANCHOR_WEIGHT = 0.3
#: The shipped starting model for sparse strokes (made by scripts/pretrain.py).
START_MODEL = Path(__file__).resolve().parents[1] / "models" / "nuclei_start.pt"


@dataclass(frozen=True)
class UNetConfig:
    """The architecture, stored in every model file."""

    in_channels: int = 1
    n_classes: int = 2
    base_channels: int = 32
    depth: int = 4
    bilinear: bool = True

    def __post_init__(self) -> None:
        if self.in_channels < 1 or self.n_classes < 2:
            raise ValueError("a U-Net needs at least one input channel and two classes")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, not {self.depth}")
        if self.base_channels < 2:
            raise ValueError(f"base_channels must be at least 2, not {self.base_channels}")

    def to_dict(self) -> dict:
        return asdict(self)


#: Architecture of the shipped starting model (tests check it against the file).
START_ARCHITECTURE = UNetConfig(in_channels=1, n_classes=2, base_channels=16, depth=4,
                                bilinear=True)


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

    elastic_sigma: float = 6.0
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
    batch_size: int = 8
    patch_size: int = 128
    learning_rate: float = 3e-3
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
    if device_kind == "cuda":
        return Defaults(32, 4, TrainConfig(batch_size=16, patch_size=256, learning_rate=2e-3,
                                           edge_weight=edge, anchor_weight=anchor,
                                           augment=AugmentConfig(elastic_sigma=8.0)))
    return Defaults(16, 4, TrainConfig(batch_size=8, patch_size=128, learning_rate=3e-3,
                                       edge_weight=edge, anchor_weight=anchor,
                                       augment=AugmentConfig(elastic_sigma=6.0)))


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
            raise InputError(
                "the nuclei starting model fixes the architecture (base 16, depth 4, "
                "bilinear): drop the base channels, depth and transposed up-sampling, or start "
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
        shaped = self.base_channels is not None or self.depth is not None or not self.bilinear
        return self.labels_kind == "annotation" and not shaped

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
