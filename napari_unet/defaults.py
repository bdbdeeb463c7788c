"""Default model and training settings, tuned per device.

Kept in one place so the command line and the GUI start from the same choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays unimported until training
    from .core.train import TrainConfig

#: Weight of the edge loss for painted strokes (see ``core.losses.edge_loss``).
EDGE_WEIGHT = 1.0
#: Weight of the anchor to the starting model for painted strokes (``TrainConfig``).
ANCHOR_WEIGHT = 0.3
#: The shipped starting model for sparse strokes (made by scripts/pretrain.py).
START_MODEL = Path(__file__).resolve().parent / "models" / "nuclei_start.pt"


def start_model_config():
    """Architecture of the starting model (and of new models for sparse strokes)."""
    from .core.model import UNetConfig

    return UNetConfig(in_channels=1, n_classes=2, base_channels=16, depth=4)


@dataclass(frozen=True)
class Defaults:
    base_channels: int
    train: TrainConfig


def training_defaults(labels_kind: str = "annotation", device: str = "auto") -> Defaults:
    """Model width and a :class:`~napari_unet.core.train.TrainConfig` for this device.

    Painted strokes (``annotation``) get the edge loss, which puts outlines on image
    edges across the band that strokes leave unpainted around objects (DSB nuclei,
    ``benchmarks/sparse.py``: foreground IoU 0.67 -> 0.78 after 60 s), and the anchor to
    the starting model, without which long runs drift (H100, 60 s: IoU 0.70 instead of
    0.76); dense labels already say where the outline is. The loss and sampling adapt to
    how densely the labels are annotated.
    """
    from .core.augment import AugmentConfig
    from .core.train import TrainConfig

    sparse = labels_kind == "annotation"
    edge = EDGE_WEIGHT if sparse else 0.0
    anchor = ANCHOR_WEIGHT if sparse else 0.0
    gpu = device.startswith("cuda") or (device == "auto" and _cuda())
    if gpu:
        return Defaults(32, TrainConfig(batch_size=16, patch_size=256, learning_rate=2e-3,
                                        edge_weight=edge, anchor_weight=anchor,
                                        augment=AugmentConfig(elastic_sigma=8.0)))
    return Defaults(16, TrainConfig(batch_size=8, patch_size=128, learning_rate=3e-3,
                                    edge_weight=edge, anchor_weight=anchor,
                                    augment=AugmentConfig(elastic_sigma=6.0)))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sparse_train_config():
    """Training settings for a few painted strokes (the ``annotation`` kind)."""
    return training_defaults("annotation").train


def new_sparse_bundle(n_classes: int, pretrained: bool = True):
    """A new model for sparse strokes: the shipped nuclei model (:func:`start_bundle`), or
    with ``pretrained`` False a fresh model of its shape."""
    from .core.checkpoint import ModelBundle

    if pretrained:
        return start_bundle("annotation", n_classes)
    return ModelBundle.new(start_model_config(), "annotation").with_classes(n_classes)


def start_bundle(labels_kind: str, n_classes: int):
    """The shipped nuclei model as a new model for ``labels_kind`` with ``n_classes``.

    The starting model (``scripts/pretrain.py``) knows background and nuclei from
    synthetic fluorescence images; with more classes its output layer grows. Worth it
    for objects like nuclei (DSB 2018 instance masks, 180 s on the 2-core CPU: foreground
    IoU 0.885 -> 0.892, F1 0.935 -> 0.947), not for EM membranes (ISBI pixel error
    0.079 -> 0.084), so the command line starts from it only for painted strokes unless
    asked. Raises :class:`~napari_unet.core.errors.InputError` when the file is missing.
    """
    from dataclasses import replace

    from .core.checkpoint import default_class_names, load_bundle
    from .core.errors import InputError

    if not START_MODEL.is_file():
        raise InputError(f"the shipped starting model is missing ({START_MODEL})")
    bundle = load_bundle(START_MODEL).with_classes(n_classes)
    if bundle.label_kind != labels_kind:
        bundle = replace(bundle, label_kind=labels_kind,
                         class_names=default_class_names(bundle.n_classes, labels_kind))
    return bundle
