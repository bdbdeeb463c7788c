"""Training on volumes: 3D sampling around strokes, paired 3D augmentation, the trainer."""

import itertools

import numpy as np
import pytest
import torch

from napari_unet.core.config import AugmentConfig, TrainOptions
from napari_unet.core.errors import InputError
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.train.augment3d import VolumeAugmenter
from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training
from napari_unet.core.train.volume_data import VolumeData, VolumeSampler
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume, starter_strokes

VOXEL = (0.5, 0.2, 0.2)
SMALL = VolumeStyle(voxel_size=VOXEL, count=6, radius=(1.6, 2.4))


@pytest.fixture(scope="module")
def tiny_volume():
    image, labels = nuclei_volume(np.random.default_rng(0), (16, 48, 48), SMALL)
    return image, labels


def test_patches_lie_around_strokes_on_three_slices_of_a_deep_volume():
    rng = np.random.default_rng(1)
    volume = rng.normal(size=(100, 64, 64)).astype(np.float32)
    annotations = np.zeros(volume.shape, np.uint8)
    for z in (20, 50, 80):
        annotations[z, 5:15, 5:40] = 1
        annotations[z, 30:40, 30:40] = 2
    data = VolumeData.from_annotations([volume], [annotations], voxel_size=VOXEL)
    assert data.annotated_slices() == [[20, 50, 80]]
    sampler = VolumeSampler(data.train, data.n_classes, (8, 32, 32), seed=0)
    x, y, w = sampler.sample(64)
    assert x.shape == (64, 1, 8, 32, 32) and y.shape == (64, 8, 32, 32) and w is None
    assert all((t >= 0).any() for t in y)  # every patch holds painted voxels
    assert any((t == 0).any() for t in y) and any((t == 1).any() for t in y)


def test_a_volume_smaller_than_the_patch_is_padded_not_annotated():
    volume = np.random.default_rng(0).normal(size=(4, 20, 20)).astype(np.float32)
    annotations = np.zeros(volume.shape, np.uint8)
    annotations[1, :5] = 1
    annotations[2, 10:] = 2
    data = VolumeData.from_annotations([volume], [annotations])
    x, y, _ = VolumeSampler(data.train, 2, (8, 32, 32)).sample(3)
    assert x.shape[2:] == (8, 32, 32)
    painted = int((data.train[0].target >= 0).sum())
    assert all(int((t >= 0).sum()) <= painted for t in y)


def test_3d_augmentation_moves_image_and_labels_together():
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 3, (2, 8, 24, 24))).long()
    labels = torch.nn.functional.max_pool3d(labels[:, None].float(), 3, 1, 1)[:, 0].long()
    labels[labels == 1] = -1  # some voxels not annotated
    images = labels[:, None].float() * 10
    aug = VolumeAugmenter(AugmentConfig(elastic_sigma=3.0, elastic_grid=12, intensity=0.0,
                                        noise=0.0), seed=5, anisotropy=2.5)
    out_img, out_lab, _ = aug(images, labels)
    assert out_img.shape == images.shape and out_lab.shape == labels.shape
    assert set(out_lab.unique().tolist()) <= {-1, 0, 2}  # nearest: the same values
    agree = (out_img[:, 0] / 10).round().long() == out_lab
    assert agree.float().mean() > 0.9  # the same field moved both
    again = VolumeAugmenter(aug.config, seed=5, anisotropy=2.5)(images, labels)
    assert torch.equal(again[1], out_lab)  # seeded


def test_3d_flips_are_exact_and_paired():
    labels = torch.arange(2 * 4 * 6 * 6).reshape(2, 4, 6, 6)
    images = labels[:, None].float()
    weights = labels.float() + 0.5
    aug = VolumeAugmenter(AugmentConfig(elastic_sigma=0, intensity=0, noise=0), seed=1)
    out_img, out_lab, out_w = aug(images, labels, weights)
    assert torch.equal(out_img[:, 0].long(), out_lab)
    assert torch.equal(out_w - 0.5, out_lab.float())
    assert sorted(out_lab.flatten().tolist()) == sorted(labels.flatten().tolist())


def test_dense_instance_labels_train_background_interior_boundary(tiny_volume):
    image, labels = tiny_volume
    plan = plan_volume_training([image], [to_annotations(labels, "instance")],
                                TrainOptions(labels_kind="instance", iterations=3,
                                             device="cpu", base_channels=4, depth=2,
                                             patch_size=32),
                                voxel_size=VOXEL)
    assert plan.bundle.n_classes == 3 and plan.bundle.dims == 3
    assert plan.bundle.config.pools == ((1, 2, 2), (2, 2, 2))  # z 2.5x coarser
    assert plan.patch[1:] == (32, 32) and plan.patch[0] % 2 == 0
    trainer = VolumeTrainer.from_plan(plan)
    records = list(trainer.fit())
    assert [r.iteration for r in records] == [1, 2, 3]
    assert all(np.isfinite(r.loss) for r in records)
    bundle = trainer.bundle()
    assert bundle.voxel_size == VOXEL and bundle.iterations == 3
    assert bundle.history[-1]["patch_shape"] == list(plan.patch)


def test_strokes_train_and_stop_ends_the_run(tiny_volume):
    image, labels = tiny_volume
    strokes = starter_strokes(np.random.default_rng(0), labels)
    assert len(np.unique(np.nonzero(strokes)[0])) == 3
    plan = plan_volume_training([image], [strokes],
                                TrainOptions(iterations=50, device="cpu", base_channels=4,
                                             depth=2, patch_size=32), voxel_size=VOXEL)
    trainer = VolumeTrainer.from_plan(plan)
    assert trainer.config.edge_weight > 0  # strokes get the edge term, per slice in 3D
    for progress in trainer.fit():
        if progress.run_iteration == 2:
            trainer.stop()
    assert trainer.run_iteration == 2
    again = plan_volume_training([image], [strokes], TrainOptions(iterations=1, device="cpu"),
                                 resume=trainer.bundle())
    assert again.bundle.voxel_size == VOXEL  # a resumed model keeps its voxel size
    assert again.bundle.iterations == 2


def test_volumes_that_cannot_teach_are_refused():
    volume = np.zeros((8, 16, 16), np.float32)
    with pytest.raises(InputError, match="nothing is annotated"):
        VolumeData.from_annotations([volume], [np.zeros(volume.shape, np.uint8)])
    with pytest.raises(InputError, match="only one class"):
        VolumeData.from_annotations([volume], [np.ones(volume.shape, np.uint8)])
    with pytest.raises(InputError, match="shape"):
        VolumeData.from_annotations([volume], [np.ones((8, 16, 15), np.uint8)])
    with pytest.raises(InputError, match="volumes"):
        VolumeData.from_annotations([volume[0]], [np.ones((16, 16), np.uint8)])
    two_d = ModelBundle.new(UNetConfig(1, 2, 4, 2))
    ann = np.ones(volume.shape, np.uint8)
    ann[0] = 2
    with pytest.raises(InputError, match="2D model"):
        plan_volume_training([volume], [ann], TrainOptions(), resume=two_d)


def test_3d_flips_folded_into_the_deformation_stay_paired_and_exact():
    # a deformation of almost nothing: each sample is one of the 16 flips / transposes
    gen = torch.Generator().manual_seed(0)
    images = torch.randn(6, 1, 4, 8, 8, generator=gen)
    labels = torch.randint(0, 4, (6, 4, 8, 8), generator=gen)
    aug = VolumeAugmenter(AugmentConfig(elastic_sigma=1e-6, elastic_grid=4, intensity=0.0,
                                        noise=0.0), seed=3)
    out_images, out_labels, _ = aug(images, labels)
    seen = set()
    for b in range(6):
        found = None
        for fx, fy, fz, tr in itertools.product((0, 1), repeat=4):
            axes = [a for a, f in ((2, fx), (1, fy), (0, fz)) if f]
            lab = torch.flip(labels[b], axes) if axes else labels[b]
            img = torch.flip(images[b, 0], axes) if axes else images[b, 0]
            if tr:
                lab, img = lab.transpose(1, 2), img.transpose(1, 2)
            if torch.equal(lab, out_labels[b]):
                found = (fx, fy, fz, tr)
                torch.testing.assert_close(out_images[b, 0], img, atol=1e-4, rtol=0)
                break
        assert found is not None
        seen.add(found)
    assert len(seen) > 1  # not the same flip for every sample


def test_dense_labels_from_trained_weights_train_at_the_lower_start_learning_rate(tiny_volume):
    from napari_unet.core.config import volume_defaults

    image, labels = tiny_volume
    dense = to_annotations(labels, "instance")
    strokes = starter_strokes(np.random.default_rng(0), labels)
    d = volume_defaults("cpu")
    assert d.start_learning_rate < d.learning_rate

    def rate(annotations, resume=None, **options):
        plan = plan_volume_training(
            [image], [annotations], TrainOptions(iterations=1, device="cpu", **options),
            voxel_size=VOXEL, objects=[labels], resume=resume)
        return plan.config.learning_rate, plan.bundle

    assert rate(dense, labels_kind="instance")[0] == d.start_learning_rate  # inflated nuclei
    assert rate(strokes)[0] == d.learning_rate  # strokes from the nuclei model
    scratch_rate, scratch = rate(dense, labels_kind="instance", start_model="none",
                                 base_channels=4, depth=2)
    assert scratch_rate == d.learning_rate  # random weights
    assert rate(dense, resume=scratch, labels_kind="instance")[0] == d.start_learning_rate
    chosen = rate(dense, labels_kind="instance", learning_rate=0.01)[0]
    assert chosen == 0.01  # the user's choice wins
