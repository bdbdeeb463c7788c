"""Property-based tests: the reader, the normaliser, the sampler and the tiled predictor
over random shapes, dtypes and values raise nothing but the documented errors
(:class:`NapariUnetError`) and give outputs of the right shape and range."""

from __future__ import annotations

import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from napari_unet.core.errors import InputError, NapariUnetError
from napari_unet.core.io.tiff import read_tiff
from napari_unet.core.labels import IGNORE
from napari_unet.core.normalise import Normalisation
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.sampling import PatchSampler

from .conftest import tiny_bundle

FUZZ = settings(max_examples=30, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64]


def _read_bytes(content: bytes):
    with tempfile.TemporaryDirectory(prefix="napari-unet-fuzz-") as folder:
        path = Path(folder) / "fuzz.tif"
        path.write_bytes(content)
        try:
            return read_tiff(path)
        except InputError as exc:
            assert str(exc)  # a sentence for the user
            return None


@lru_cache(maxsize=1)
def _valid_tiff() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "valid.tif"
        data = np.arange(3 * 16 * 20, dtype=np.uint16).reshape(3, 16, 20)
        tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"}, compression="zlib")
        return path.read_bytes()


# ----------------------------------------------------------------------- reader
@FUZZ
@given(data=st.data(), dtype=st.sampled_from(DTYPES),
       shape=st.lists(st.integers(1, 9), min_size=2, max_size=4).map(tuple),
       compress=st.booleans())
def test_reader_reads_back_what_tifffile_writes(data, dtype, shape, compress):
    array = data.draw(hnp.arrays(dtype, shape))
    with tempfile.TemporaryDirectory(prefix="napari-unet-fuzz-") as folder:
        path = Path(folder) / "image.tif"
        tifffile.imwrite(path, array, compression="zlib" if compress else None,
                         photometric="minisblack")
        image = read_tiff(path)
    assert image.data.size == array.size and image.data.dtype == array.dtype
    assert len(image.axes) == image.data.ndim == len(image.scale)
    np.testing.assert_array_equal(image.data.reshape(array.shape), array)


@FUZZ
@given(content=st.binary(max_size=600),
       header=st.sampled_from([b"", b"II*\x00", b"MM\x00*", b"II+\x00\x08\x00\x00\x00"]))
def test_reader_on_random_bytes(content, header):
    image = _read_bytes(header + content)
    if image is not None:
        assert image.data.size > 0


@FUZZ
@given(cut=st.integers(0, 10_000), flips=st.lists(
    st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=6))
def test_reader_on_damaged_tiffs(cut, flips):
    content = bytearray(_valid_tiff())
    for where, value in flips:
        content[where % len(content)] = value
    content = bytes(content[: max(1, cut % (len(content) + 1))])
    with warnings.catch_warnings():  # tifffile warns about what it repairs
        warnings.simplefilter("ignore")
        image = _read_bytes(content)
    if image is not None:
        assert image.data.size > 0 and len(image.axes) == image.data.ndim


# ------------------------------------------------------------------- normaliser
@FUZZ
@given(data=st.data(),
       dtype=st.sampled_from([*DTYPES, np.int64, np.float16, np.bool_]),
       shape=st.one_of(st.tuples(st.integers(1, 12), st.integers(1, 12)),
                       st.tuples(st.integers(1, 3), st.integers(1, 12), st.integers(1, 12))),
       low=st.floats(0, 49), high=st.floats(50, 100), per_slice=st.booleans())
def test_normalisation_is_finite_float32_of_the_same_shape(data, dtype, shape, low, high,
                                                           per_slice):
    image = data.draw(hnp.arrays(dtype, shape))
    before = image.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow on extreme values
        out = Normalisation(low, high, per_slice).apply(image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_array_equal(image, before)  # the input is left alone


# ---------------------------------------------------------------------- sampler
@st.composite
def annotated_images(draw):
    n = draw(st.integers(1, 2))
    images, annotations = [], []
    for _ in range(n):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, 40)))
        images.append(draw(hnp.arrays(np.float32, shape, elements=st.floats(-1e3, 1e3, width=32))))
        annotations.append(draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 4))))
    return images, annotations


@FUZZ
@given(pairs=annotated_images(), patch=st.sampled_from([16, 32, 48]),
       batch=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_sampler_patches_have_the_right_shape_and_values(pairs, patch, batch, seed):
    images, annotations = pairs
    try:
        data = TrainingData.from_annotations(images, annotations, seed=seed)
    except InputError:
        return  # nothing annotated, or one class only: refused with a sentence
    sampler = PatchSampler(data.train, data.n_classes, patch, seed=seed)
    x, y, w = sampler.sample(batch)
    assert x.shape == (batch, 1, patch, patch) and x.dtype == np.float32
    assert y.shape == (batch, patch, patch) and y.dtype == np.int64
    assert w is None
    assert np.isfinite(x).all()
    assert y.min() >= IGNORE and y.max() < data.n_classes
    assert (y >= 0).any(axis=(1, 2)).all()  # every patch holds annotated pixels


# -------------------------------------------------------------------- predictor
@lru_cache(maxsize=4)
def _bundle(n_classes: int):
    return tiny_bundle(n_classes=n_classes, seed=n_classes)


@settings(FUZZ, max_examples=25)
@given(data=st.data(), n_classes=st.integers(2, 4),
       shape=st.one_of(st.tuples(st.integers(1, 48), st.integers(1, 48)),
                       st.tuples(st.integers(1, 2), st.integers(1, 32), st.integers(1, 32))),
       tile=st.sampled_from([1, 8, 16, 32, 48, 64, 256]), overlap=st.integers(0, 80),
       batch=st.one_of(st.none(), st.integers(1, 5)))
def test_tiled_prediction_shapes_and_probabilities(data, n_classes, shape, tile, overlap, batch):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    with np.errstate(over="ignore"):  # 1e30 squared and so on: infinity is welcome
        image = (rng.normal(0, 1, shape) * data.draw(st.sampled_from([0, 1e-30, 1, 1e30])))
        image = image.astype(np.float32)
    specials = data.draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 0.0]), max_size=4))
    image.ravel()[rng.integers(0, image.size, len(specials))] = specials  # NaN and infinity
    predictor = Predictor(_bundle(n_classes), device="cpu", tile_size=tile, overlap=overlap,
                          batch_size=batch, mixed_precision=False)
    try:
        result = predictor.predict(image, probabilities=True, instances=data.draw(st.booleans()))
    except NapariUnetError:
        raise AssertionError("a valid image was refused") from None
    assert result.labels.shape == shape and result.labels.max() < n_classes
    probs = result.probabilities
    assert probs.shape == (*shape[:-2], n_classes, *shape[-2:])
    assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1 + 1e-6
    np.testing.assert_allclose(probs.sum(axis=-3), 1.0, atol=1e-4)
    np.testing.assert_array_equal(result.labels, probs.argmax(axis=-3))
    if result.instances is not None:
        assert result.instances.shape == shape and result.instances.min() >= 0


@given(labels=hnp.arrays(np.uint16, st.tuples(st.integers(1, 3), st.integers(1, 40),
                                              st.integers(1, 40)),
                         elements=st.integers(0, 6)),
       w0=st.floats(0, 20), sigma=st.floats(0.5, 10))
@FUZZ
def test_border_weights_are_bounded_and_leave_objects_alone(labels, w0, sigma):
    from napari_unet.core.labels import border_weights, painted_objects

    w = border_weights(labels, w0=w0, sigma=sigma)
    assert w.shape == labels.shape and w.dtype == np.float32
    assert np.all(np.isfinite(w)) and np.all(w >= 1) and np.all(w <= 1 + w0 + 1e-4)
    assert np.all(w[labels > 0] == 1)
    objects = painted_objects(labels)
    assert objects.shape == labels.shape and np.all((objects > 0) == (labels >= 2))
