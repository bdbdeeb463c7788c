"""How large objects look, and predicting images resized for the model (core.scale)."""

import numpy as np
import pytest
from skimage.transform import resize

from napari_unet.core.errors import InputError, ModelFileError
from napari_unet.core.models.checkpoint import ModelBundle, bundle_from_dict, load_bundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.scale import (
    MIN_FACTOR,
    TOLERANCE,
    _finest_strong_peak,
    check_rescale,
    factor_for,
    object_size,
    training_size,
    upsample_rows,
)
from tests.conftest import blobs, constant_bundle


def discs(radius: int, shape=(256, 256), spacing: int | None = None, seed: int = 0):
    """Bright disks of one radius on a grid (jittered), noisy background."""
    rng = np.random.default_rng(seed)
    spacing = spacing or 4 * radius
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    mask = np.zeros(shape, bool)
    for cy in range(spacing // 2, shape[0] - radius, spacing):
        for cx in range(spacing // 2, shape[1] - radius, spacing):
            jy, jx = rng.integers(-radius // 2, radius // 2 + 1, 2)
            mask |= (yy - cy - jy) ** 2 + (xx - cx - jx) ** 2 <= radius**2
    return (mask * 1.0 + rng.normal(0, 0.05, shape)).astype(np.float32)


@pytest.mark.parametrize("radius", [4, 8, 16])
def test_the_size_read_follows_the_objects_diameter(radius):
    size = object_size(discs(radius, shape=(384, 384)))
    assert 1.0 * 2 * radius <= size <= 1.6 * 2 * radius, size


def test_sizes_compare_as_the_objects_do_and_channels_are_averaged():
    small, large = object_size(discs(5)), object_size(discs(15, shape=(384, 384)))
    assert 2.5 < large / small < 3.5
    two = np.stack([discs(5), np.zeros((256, 256), np.float32)])
    assert object_size(two) == pytest.approx(small, rel=0.05)


def test_a_flat_or_narrow_slice_has_no_size():
    assert object_size(np.full((64, 64), 3.0, np.float32)) is None
    assert object_size(discs(4, shape=(20, 300))) is None
    assert training_size([np.zeros((2, 32, 32), np.float32)]) is None


def test_a_clump_of_objects_reads_as_its_members_not_as_the_clump():
    """Strongest response at a large width (the clump), a strong one at a small width
    (its members): the small one is taken; a weak small peak (texture) is not."""
    widths = np.arange(20)
    clump = np.exp(-0.5 * ((widths - 14) / 2.0) ** 2)
    members = 0.8 * np.exp(-0.5 * ((widths - 5) / 1.5) ** 2)
    assert _finest_strong_peak(clump + members) == 5
    assert _finest_strong_peak(clump + members * 0.5) == 14


def test_training_size_is_the_median_over_slices_and_reads_lazy_views():
    stack = np.stack([discs(4, seed=s) for s in range(3)] + [discs(12, seed=3)])
    each = [object_size(p) for p in stack]
    assert training_size([stack]) == pytest.approx(np.median(each))

    class Lazy:  # indexed [z, ..., ys, xs] as core.normalise.LazyNormalised is
        shape = stack.shape

        def __getitem__(self, key):
            z, ys, xs = (k for k in key if k is not Ellipsis)
            return stack[z, ys, xs]

    assert training_size([Lazy()]) == pytest.approx(training_size([stack]))
    assert training_size([stack], most=2) == pytest.approx(np.median(each[::3]))


def test_only_objects_clearly_larger_than_the_model_s_are_shrunk_and_smoothly():
    assert factor_for(TOLERANCE * 10, 10.0) == 1.0  # within the tolerance
    assert factor_for(TOLERANCE * 10 + 0.1, 10.0) == pytest.approx(1.0, abs=0.01)
    assert factor_for(50.0, 10.0) == pytest.approx(TOLERANCE * 10 / 50)  # to look 15 across
    assert factor_for(1000.0, 10.0) == MIN_FACTOR
    assert factor_for(2.0, 10.0) == 1.0  # smaller objects: never enlarged
    assert factor_for(None, 10.0) == factor_for(50.0, None) == 1.0


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (" OFF", "off"), ("0.5", 0.5),
                                             (0.25, 0.25), ("2", 2.0)])
def test_rescale_settings(value, expected):
    assert check_rescale(value) == expected


@pytest.mark.parametrize("value", ["big", "", "0", "-1", "nan", "inf", "9", None])
def test_bad_rescale_settings_are_refused_with_a_sentence(value):
    with pytest.raises(ValueError, match="rescale"):
        check_rescale(value)
    with pytest.raises(InputError, match="rescale"):
        Predictor(constant_bundle([0.5, 0.3, 0.2]), device="cpu", rescale=value)


def test_upsampling_by_bands_matches_a_whole_bilinear_resize():
    rng = np.random.default_rng(0)
    small = rng.random((3, 17, 23)).astype(np.float32)
    whole = np.stack([resize(c, (50, 71), order=1, mode="edge", anti_aliasing=False)
                      for c in small])
    bands = np.concatenate([upsample_rows(small, 50, 71, a, b)
                            for a, b in ((0, 13), (13, 14), (14, 50))], axis=1)
    np.testing.assert_allclose(upsample_rows(small, 50, 71, 0, 50), whole, atol=1e-5)
    np.testing.assert_allclose(bands, whole, atol=1e-5)


def _bundle_with_size(size):
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    bundle.object_size = size
    return bundle


def test_auto_shrinks_a_slice_of_large_objects_and_gives_labels_at_its_size():
    image = discs(16, shape=(200, 232)) * 100
    small_objects = discs(4, shape=(200, 232)) * 100
    bundle = _bundle_with_size(object_size(discs(4)))
    predictor = Predictor(bundle, device="cpu")
    result = predictor.predict(np.stack([image, small_objects]), probabilities=True,
                               instances=True)
    assert result.labels.shape == result.instances.shape == (2, 200, 232)
    assert result.probabilities.shape == (2, 3, 200, 232)
    np.testing.assert_allclose(result.probabilities.sum(1), 1, atol=1e-4)
    norm = bundle.normalisation
    expected = factor_for(object_size(norm.normalise(image, norm.stats(image))),
                          bundle.object_size)
    assert result.factors[0] == pytest.approx(expected) and expected < 0.6  # 32 across, not 8
    assert result.factors[1] == 1.0
    assert result.resized() == {0: result.factors[0]}
    # The same as predicting the shrunk slice and resizing its probabilities back.
    plain = Predictor(bundle, device="cpu", rescale="off")
    shrunk = resize(norm.normalise(image, norm.stats(image)),
                    (round(200 * result.factors[0]), round(232 * result.factors[0])),
                    order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)
    probs = plain.probabilities_2d(shrunk[None])
    np.testing.assert_allclose(result.probabilities[0], upsample_rows(probs, 200, 232, 0, 200),
                               atol=1e-4)


def test_off_a_factor_or_an_unknown_training_size_keep_or_force_the_size():
    image = discs(16, shape=(160, 160)) * 100
    bundle = _bundle_with_size(8.0)
    assert Predictor(bundle, device="cpu", rescale="off").predict(image).factors == {0: 1.0}
    forced = Predictor(bundle, device="cpu", rescale=0.5).predict(image[None], slices=[0])
    assert forced.factors == {0: 0.5} and forced.labels.shape == (1, 160, 160)
    unknown = _bundle_with_size(None)  # a model saved before sizes were recorded
    assert Predictor(unknown, device="cpu").predict(image).factors == {0: 1.0}
    # The labels agree with the labels of the probabilities (one decision).
    result = Predictor(bundle, device="cpu", rescale=0.5).predict(image, probabilities=True)
    np.testing.assert_array_equal(result.labels,
                                  Predictor(bundle, device="cpu").labels_2d(
                                      result.probabilities))


def test_the_training_size_travels_with_the_model_file(tmp_path):
    bundle = _bundle_with_size(17.5)
    bundle.save(tmp_path / "m.pt")
    assert load_bundle(tmp_path / "m.pt").object_size == 17.5
    assert bundle.with_classes(4).object_size == 17.5
    assert bundle.with_channels(2).object_size == 17.5
    payload = bundle.to_dict()
    del payload["object_size"]  # a file from before sizes were recorded
    assert bundle_from_dict(payload).object_size is None
    for bad in (-1.0, float("nan"), "big", True, 1e9):
        with pytest.raises(ModelFileError, match="object size"):
            bundle_from_dict({**bundle.to_dict(), "object_size": bad})


def test_training_records_the_size_of_its_images():
    from napari_unet.core.labels import to_annotations
    from napari_unet.core.train.data import TrainingData
    from napari_unet.core.train.trainer import TrainConfig, Trainer

    image, labels = blobs(np.random.default_rng(1), shape=(2, 96, 96), n=8, radius=5)
    data = TrainingData.from_annotations([image], [to_annotations(labels, "instance")])
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    trainer = Trainer(bundle, data, TrainConfig(iterations=1, batch_size=1, patch_size=32,
                                                leave_core_free=False))
    list(trainer.fit())
    size = trainer.bundle().object_size
    assert 10 <= size <= 16, size  # disks 11 pixels across
    assert size == pytest.approx(training_size([p.image for p in data.train]))


def test_factors_read_as_one_number_or_a_range():
    from napari_unet.core.scale import factor_range

    assert factor_range([0.333, 0.3331]) == "0.33"
    assert factor_range({0: 0.29, 3: 0.42}.values()) == "0.29-0.42"
    assert factor_range([0.41, 0.5], percent=True) == "41-50 %"
    assert factor_range([0.333], percent=True) == "33 %"
