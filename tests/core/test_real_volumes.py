"""The real z-stacks of shared/data/3d (skipped when ../shared/data is absent): their
voxel size reaches training and the model, they count as volumes, and a 3D model
trained on strokes of three slices of one predicts 3D objects of it."""

import numpy as np
import pytest

from napari_unet.core.config import TrainOptions
from napari_unet.core.io.lazy import open_image
from napari_unet.core.metrics import foreground_iou
from napari_unet.core.predict.volume import VolumePredictor, zoom_factors
from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training
from napari_unet.core.voxels import is_volume, voxel_size_of
from napari_unet.synthetic_volume import starter_strokes
from tests.conftest import shared_data


def _stack(name):
    folder = shared_data("3d")
    image = open_image(folder / f"{name}_image.tif")
    labels = np.asarray(open_image(folder / f"{name}_labels.tif").data)
    return np.asarray(image.data), labels, voxel_size_of(image.scale)


def test_the_real_stacks_are_volumes_with_their_voxel_sizes():
    ovule, _, ovule_voxel = _stack("ovule_nuclei_a")
    embryo, _, embryo_voxel = _stack("embryo_nuclei_8cell")
    assert ovule_voxel == pytest.approx((0.284, 0.127, 0.127), rel=0.01)
    assert embryo_voxel == pytest.approx((1.75, 0.8, 0.8), rel=0.01)
    assert is_volume(ovule, ovule_voxel)[0] and is_volume(embryo, embryo_voxel)[0]
    factors = zoom_factors(embryo_voxel, ovule_voxel)
    assert factors[1] == pytest.approx(6.3, rel=0.02)  # the 6x rescaling case


def test_a_3d_model_trains_on_strokes_of_three_slices_of_a_real_stack():
    image, labels, voxel = _stack("ovule_nuclei_a")
    crop = (slice(20, 60), slice(0, 64), slice(0, 64))
    image, labels = image[crop], labels[crop]
    strokes = starter_strokes(np.random.default_rng(0), labels)
    options = TrainOptions(iterations=4, device="cpu", base_channels=4, depth=2,
                           patch_size=32)
    plan = plan_volume_training([image], [strokes], options, voxel_size=voxel)
    assert plan.bundle.config.pools[0] == (1, 2, 2)  # z 2.2x coarser: not pooled first
    trainer = VolumeTrainer.from_plan(plan)
    list(trainer.fit())
    bundle = trainer.bundle()
    assert bundle.voxel_size == voxel
    result = VolumePredictor(bundle, device="cpu").predict(image, voxel, instances=True)
    assert result.instances.shape == labels.shape
    assert 0 <= foreground_iou(result.labels, labels) <= 1
