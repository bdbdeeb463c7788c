"""Tiled prediction (napari_unet.core.predict.tiles)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor, tile_starts
from tests.core.kit import TINY


@pytest.mark.parametrize("size,tile,overlap", [(100, 64, 16), (2048, 512, 64), (30, 64, 16),
                                               (1000, 512, 64)])
def test_tiles_cover_evenly_and_align(size, tile, overlap):
    t, starts = tile_starts(size, tile, overlap, 16)
    assert t % 16 == 0 and t <= max(tile, -(-size // 16) * 16)
    assert starts[0] == 0 and starts[-1] + t >= size
    covered = np.zeros(max(size, t), bool)
    for s in starts:
        covered[s : s + t] = True
    assert covered[:size].all()
    for a, b in zip(starts, starts[1:]):
        assert a + t - b >= overlap


@pytest.mark.parametrize("size,tile,overlap,multiple", [(37, 4, 0, 4), (33, 8, 0, 4),
                                                        (101, 8, 1, 8)])
def test_tiles_without_overlap_leave_no_gap(size, tile, overlap, multiple):
    """Starts rounded to the pooling grid can open a gap between tiles that barely
    overlap (37 pixels in tiles of 4 left pixel 32 out); every pixel is covered."""
    t, starts = tile_starts(size, tile, overlap, multiple)
    covered = np.zeros(max(size, t), bool)
    for s in starts:
        covered[s : s + t] = True
    assert covered[:size].all() and starts[-1] + t == size


def test_tiled_and_untiled_probabilities_agree_away_from_the_border(rng):
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=3), seed=1)
    image = rng.normal(size=(300, 260)).astype(np.float32)
    untiled = Predictor(bundle, tile_size=1024).probabilities_2d(image)
    tiled = Predictor(bundle, tile_size=128, overlap=64, batch_size=3).probabilities_2d(image)
    assert tiled.shape == untiled.shape == (3, 300, 260)
    assert np.allclose(tiled.sum(0), 1, atol=1e-5)
    inner = (slice(None), slice(40, -40), slice(40, -40))
    assert np.abs(tiled[inner] - untiled[inner]).max() < 0.02
    assert np.abs(tiled[inner] - untiled[inner]).mean() < 1e-3


def test_predict_stack_slices_progress_and_probabilities(blob_data):
    image, _ = blob_data
    bundle = ModelBundle.new(TINY)
    seen = []
    pred = Predictor(bundle, tile_size=32, overlap=8).predict(
        image, slices=[1], probabilities=True, progress=lambda d, t: seen.append((d, t)))
    assert pred.labels.shape == image.shape and pred.labels.dtype == np.uint8
    assert pred.probabilities.shape == (2, 2, 64, 64)
    assert (pred.probabilities[0] == 0).all()  # slice 0 not predicted
    assert np.allclose(pred.probabilities[1].sum(0), 1, atol=1e-5)
    assert seen == [(1, 1)]
    with pytest.raises(InputError):
        Predictor(bundle).predict(np.zeros((2, 2, 8, 8)))


def test_instances_split_touching_objects():
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    probs = np.zeros((3, 20, 30), np.float32)
    probs[0] = 1
    probs[:, 5:15, 3:13] = np.array([0, 1, 0])[:, None, None]
    probs[:, 5:15, 14:26] = np.array([0, 1, 0])[:, None, None]
    probs[:, 5:15, 13] = np.array([0, 0, 1])[:, None]  # boundary between them
    labels = probs.argmax(0)
    inst = Predictor(bundle).instances_2d(probs, labels, min_size=5)
    assert inst.max() == 2
    assert inst[10, 5] != inst[10, 20] and inst[0, 0] == 0


def test_objects_of_a_model_without_interiors_split_at_the_neck_of_touching_nuclei():
    """Strokes or semantic masks: each class's region is split from the cores of its
    distance transform, so two touching nuclei are two objects and one nucleus, round
    or long, is one; classes never share an object."""
    from napari_unet.core.predict.objects import class_objects, split_into_objects

    yy, xx = np.mgrid[:60, :90]
    classes = np.zeros((60, 90), np.uint8)
    classes[(yy - 30) ** 2 + (xx - 20) ** 2 <= 10**2] = 1  # two discs that touch
    classes[(yy - 30) ** 2 + (xx - 37) ** 2 <= 9**2] = 1
    classes[((yy - 30) / 8.0) ** 2 + ((xx - 72) / 16.0) ** 2 <= 1] = 2  # one long nucleus
    classes[10:22, 50:62] = 1  # a square of class 1 touching nothing
    from skimage.measure import label as connected

    assert connected(classes == 1).max() == 2  # connected components merge the discs
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), seed=0)
    objects = Predictor(bundle).instances_2d(np.zeros((3, 60, 90), np.float32), classes,
                                             min_size=5)
    assert objects.max() == 4
    assert objects[30, 20] != objects[30, 37] and min(objects[30, 20], objects[30, 37]) > 0
    assert len(np.unique(objects[classes == 2])) == 1 and objects[30, 72] > 0
    for i in np.unique(objects[objects > 0]):  # one class per object
        assert len(np.unique(classes[objects == i])) == 1
    assert np.array_equal(objects > 0, classes > 0)
    np.testing.assert_array_equal(class_objects(classes, 5), objects)
    np.testing.assert_array_equal(split_into_objects(classes[None], 5)[0], objects)


def test_foreground_threshold_shrinks_objects(rng):
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), seed=3)
    probs = rng.dirichlet(np.ones(3), size=(40, 50)).transpose(2, 0, 1).astype(np.float32)
    default = Predictor(bundle).labels_2d(probs)
    assert np.array_equal(default > 0, probs[0] <= 0.5)
    low = Predictor(bundle, foreground_threshold=0.3).labels_2d(probs)
    high = Predictor(bundle, foreground_threshold=0.8).labels_2d(probs)
    assert np.array_equal(high > 0, 1 - probs[0] >= 0.8)
    assert (high > 0).sum() < (default > 0).sum() < (low > 0).sum()
    assert np.array_equal(high[high > 0], probs[1:].argmax(0)[high > 0] + 1)
    with pytest.raises(InputError):
        Predictor(bundle, foreground_threshold=1.5)
