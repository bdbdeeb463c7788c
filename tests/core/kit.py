"""Tiny models and data shared by the core tests of training and prediction."""

from napari_unet.core.labels import to_annotations
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig

TINY = UNetConfig(n_classes=2, base_channels=8, depth=2)
FAST = TrainConfig(iterations=40, batch_size=4, patch_size=32, learning_rate=1e-2,
                   validate_every=10, dice_weight=0.5)


def blob_training(blob_data, kind="semantic"):
    image, labels = blob_data
    ann = to_annotations(labels > 0 if kind == "semantic" else labels, kind)
    return image, labels, TrainingData.from_annotations([image], [ann])
