"""End to end on real microscopy (skipped when ../shared/data is absent)."""

import dataclasses

import numpy as np
import tifffile

from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig, Trainer
from tests.conftest import shared_data


def test_dsb_nuclei_beat_chance_after_brief_training():
    folder = shared_data("dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    train, test = slice(0, 20), slice(36, 40)
    data = TrainingData.from_annotations([images[train]],
                                         [to_annotations(labels[train], "instance")])
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=8, depth=3), "instance")
    cfg = dataclasses.replace(TrainConfig(), iterations=150, batch_size=8, patch_size=96,
                              leave_core_free=False)
    trainer = Trainer(bundle, data, cfg)
    list(trainer.fit())
    pred = Predictor(trainer.bundle()).predict(images[test], instances=True)
    fg, gt = pred.labels > 0, labels[test] > 0
    iou = (fg & gt).sum() / (fg | gt).sum()
    chance = gt.mean()  # IoU of calling everything foreground
    assert iou > max(0.6, chance + 0.3), iou
    assert pred.instances.max() > 0
    assert np.array_equal(np.unique(pred.labels), np.arange(pred.labels.max() + 1))
