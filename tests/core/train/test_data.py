import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.labels import (
    IGNORE,
    border_weights,
    instance_to_classes,
    painted_objects,
    to_annotations,
)
from napari_unet.core.normalise import Normalisation
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.sampling import PatchSampler


def test_label_kinds_follow_the_conventions():
    sem = np.array([[0, 1], [2, 0]])
    assert to_annotations(sem, "semantic").tolist() == [[1, 2], [3, 1]]
    ann = np.array([[0, 1], [2, 3]])
    assert to_annotations(ann, "annotation").tolist() == ann.tolist()
    inst = np.zeros((12, 12), np.uint16)
    inst[2:6, 2:6] = 1
    inst[2:6, 6:10] = 2  # touching object
    cls = to_annotations(inst, "instance")
    assert set(np.unique(cls)) == {1, 2, 3}
    assert (cls[inst == 0] == 1).all()
    assert (cls[3:5, 5:7] == 3).all()  # where the two objects touch is boundary
    assert cls[3, 3] == 2


def test_instance_classes_per_slice():
    inst = np.zeros((2, 10, 10), np.uint16)
    inst[1, 2:8, 2:8] = 5
    cls = instance_to_classes(inst)
    assert (cls[0] == 1).all()
    assert cls[1, 5, 5] == 2 and cls[1, 2, 2] == 3


def test_bad_labels_get_clear_errors():
    with pytest.raises(InputError, match="negative"):
        to_annotations(np.array([[-1, 0]]), "semantic")
    with pytest.raises(InputError, match="fractional"):
        to_annotations(np.array([[0.5, 1.0]]), "semantic")
    assert to_annotations(np.array([[0.0, 2.0]]), "semantic").tolist() == [[1, 3]]
    with pytest.raises(InputError, match="unknown labels kind"):
        to_annotations(np.zeros((2, 2), int), "blobs")


def test_normalisation_maps_percentiles_and_survives_bad_values():
    img = np.linspace(0, 1000, 10000, dtype=np.float32).reshape(100, 100)
    out = Normalisation(1, 99).apply(img)
    assert out.dtype == np.float32
    assert np.percentile(out, 1) == pytest.approx(0, abs=1e-3)
    assert np.percentile(out, 99) == pytest.approx(1, abs=1e-3)
    img[0, :5] = [np.nan, np.inf, -np.inf, np.nan, np.nan]
    assert np.isfinite(Normalisation().apply(img)).all()
    assert np.isfinite(Normalisation().apply(np.full((8, 8), 7.0))).all()
    stack = np.stack([img, img * 10])
    per = Normalisation(per_slice=True).apply(stack)
    assert np.allclose(per[0], per[1], atol=1e-4)


def test_training_data_refuses_what_cannot_teach(blob_data):
    image, labels = blob_data
    with pytest.raises(InputError, match="nothing is annotated"):
        TrainingData.from_annotations([image], [np.zeros_like(labels)])
    with pytest.raises(InputError, match="only one class"):
        TrainingData.from_annotations([image], [np.ones_like(labels)])
    with pytest.raises(InputError, match="shape"):
        TrainingData.from_annotations([image], [labels[:, :10]])
    with pytest.raises(InputError, match="model has only 2"):
        TrainingData.from_annotations([image], [to_annotations(labels, "instance")], n_classes=2)


def test_training_data_targets_and_counts(blob_data):
    image, labels = blob_data
    ann = np.zeros(labels.shape, np.uint8)
    ann[0, :5] = 1
    ann[0][labels[0] > 0] = 2
    td = TrainingData.from_annotations([image], [ann])
    assert td.n_classes == 2
    assert td.counts.tolist() == [int((ann == 1).sum()), int((ann == 2).sum())]
    assert len(td.train) == 1 and td.train[0].image.shape == (1, 64, 64)  # slice 1 unannotated
    assert td.train[0].target.min() == IGNORE


def test_validation_split_holds_out_slices(rng):
    image = rng.normal(size=(10, 32, 32)).astype(np.float32)
    ann = np.ones((10, 32, 32), np.uint8)
    ann[:, :8] = 2
    td = TrainingData.from_annotations([image], [ann], validation_fraction=0.2)
    assert len(td.validation) == 2
    assert sum(p.image.shape[0] for p in td.train) == 8


def test_several_images_of_different_sizes(rng):
    a = rng.normal(size=(40, 50)).astype(np.float32)
    b = rng.normal(size=(3, 20, 30)).astype(np.float32)
    ann_a = np.zeros(a.shape, np.uint8)
    ann_a[:5] = 1
    ann_b = np.zeros(b.shape, np.uint8)
    ann_b[1, :3] = 3
    td = TrainingData.from_annotations([a, b], [ann_a, ann_b])
    assert td.n_classes == 3
    sampler = PatchSampler(td.train, td.n_classes, 32, seed=0)
    x, y, w = sampler.sample(16)
    assert x.shape == (16, 1, 32, 32) and y.shape == (16, 32, 32) and w is None
    assert set(np.unique(y)) <= {IGNORE, 0, 1, 2}


def test_sampler_balances_classes():
    image = np.zeros((1, 200, 200), np.float32)
    target = np.full((1, 200, 200), IGNORE, np.int16)
    target[0, :100] = 0  # lots of background
    target[0, 150, 150:153] = 1  # a tiny stroke of a rare class
    from napari_unet.core.train.data import Pair

    sampler = PatchSampler([Pair(image, target)], 2, 32, seed=0)
    _, y, _ = sampler.sample(200)
    with_rare = np.mean([(yy == 1).any() for yy in y])
    assert 0.35 < with_rare < 0.65


def test_small_images_are_padded(rng):
    image = rng.normal(size=(1, 10, 12)).astype(np.float32)
    ann = np.ones((1, 10, 12), np.uint8)
    ann[0, :3] = 2
    td = TrainingData.from_annotations([image], [ann])
    x, y, _ = PatchSampler(td.train, 2, 32, seed=0).sample(2)
    assert x.shape == (2, 1, 32, 32)
    assert (y == IGNORE).sum() == 2 * (32 * 32 - 10 * 12)


def test_border_weights_are_high_in_narrow_gaps_only():
    labels = np.zeros((40, 60), np.uint16)
    labels[5:25, 5:20] = 1
    labels[5:25, 22:40] = 2  # 2 px from object 1
    labels[30:38, 5:15] = 3
    w = border_weights(labels, w0=10, sigma=5)
    assert w.dtype == np.float32 and w.shape == labels.shape
    gap = w[10, 20:22]
    assert np.all(gap > 8) and np.all(gap <= 11)  # 1 + 10 exp(-(1+2)^2 / 50) = 9.4
    assert np.all(w[labels > 0] == 1)  # objects keep weight 1
    assert w[10, 55] == pytest.approx(1, abs=1e-3)  # far from any gap
    assert w[27, 10] > w[10, 55]  # the wider 5 px gap between objects 1 and 3 counts less
    assert w[27, 10] < gap.min()
    stack = border_weights(np.stack([labels, np.zeros_like(labels)]))
    assert np.array_equal(stack[0], w) and np.all(stack[1] == 1)


def test_painted_objects_number_each_painted_region_of_each_class():
    ann = np.zeros((2, 20, 30), np.uint8)
    ann[0, 2:8, 2:8] = 2
    ann[0, 2:8, 10:15] = 2
    ann[0, 12:18, 2:8] = 3
    ann[0, 10:11, :] = 1  # background strokes are not objects
    ann[1, 5:9, 5:9] = 2
    objects = painted_objects(ann)
    assert objects[0].max() == 3 and objects[1].max() == 1
    assert len(np.unique(objects[0][ann[0] == 2])) == 2
    assert np.all(objects[ann < 2] == 0)


def test_sampler_centres_a_share_of_patches_on_heavy_pixels():
    """A 5x5 correction weighted 3x among 128x128 painted pixels centres FOCUS_SHARE of
    the patches; without weights it would centre almost none."""
    from napari_unet.core.train.data import Pair
    from napari_unet.core.train.sampling import FOCUS_SHARE, PatchSampler

    image = np.zeros((1, 256, 256), np.float32)
    target = np.full((1, 256, 256), -1, np.int64)
    target[0, :128, :128] = 0
    target[0, 200:205, 200:205] = 0
    target[0, 60:70, 60:70] = 1
    weight = np.ones(image.shape, np.float32)
    weight[0, 200:205, 200:205] = 3.0
    for w, low, high in ((weight, FOCUS_SHARE - 0.05, FOCUS_SHARE + 0.15), (None, 0, 0.01)):
        sampler = PatchSampler([Pair(image, target, w)], 2, 32, seed=0)
        corners = sampler.draw(4000)
        near = np.mean([y0 >= 150 and x0 >= 150 for _, _, y0, x0 in corners])
        assert low <= near <= high
