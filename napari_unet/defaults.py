"""Default model and training settings, tuned per labels kind and device.

Kept in one place so the command line and the GUI start from the same choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .core.augment import AugmentConfig


@dataclass(frozen=True)
class Defaults:
    base_channels: int
    train: object = field(default=None)


def training_defaults(labels_kind: str = "annotation", device: str = "auto") -> Defaults:
    """Model width and a :class:`~napari_unet.core.train.TrainConfig` for this case."""
    from .core.train import TrainConfig

    gpu = device.startswith("cuda") or (device == "auto" and _cuda())
    if gpu:
        return Defaults(32, TrainConfig(batch_size=16, patch_size=256, learning_rate=2e-3,
                                        augment=AugmentConfig(elastic_sigma=8.0)))
    return Defaults(16, TrainConfig(batch_size=8, patch_size=128, learning_rate=3e-3,
                                    augment=AugmentConfig(elastic_sigma=6.0)))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sparse_train_config():
    """Training settings for a few painted strokes (the ``annotation`` kind)."""
    return training_defaults("annotation").train


def new_sparse_bundle(n_classes: int, pretrained: bool = True):
    """A model for sparse strokes: the shipped starting model when there is one."""
    from .core.checkpoint import ModelBundle
    from .core.model import UNetConfig

    return ModelBundle.new(UNetConfig(n_classes=n_classes, base_channels=16, depth=4),
                           "annotation")
