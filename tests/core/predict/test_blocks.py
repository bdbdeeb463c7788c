"""Prediction block by block into OME-Zarr: the same objects as the whole image, one id
per object across block edges, readable metadata, nothing left behind on failure."""

import os

import numpy as np
import pytest
import torch

from napari_unet.core.config import START_MODEL
from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import open_image
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.normalise import Normalisation
from napari_unet.core.predict import regions, stitch
from napari_unet.core.predict.blocks import predict_blocks
from napari_unet.core.predict.regions import slice_stats
from napari_unet.core.predict.tiles import Predictor
from tests.conftest import blobs


def nuclei_model(kind: str) -> ModelBundle:
    """The shipped nuclei model (background / nucleus: connected components), or the same
    network read as background / interior / boundary (a watershed from the interiors):
    boundary where the nucleus logit exceeds the background's by less than 4."""
    bundle = load_bundle(START_MODEL)
    if kind == "components":
        return bundle
    state = {k: v.clone() for k, v in bundle.state_dict.items()}
    w, b = state["outc.conv.weight"], state["outc.conv.bias"]
    state["outc.conv.weight"] = torch.cat([w[:1], w[1:2], (w[:1] + w[1:2]) / 2])
    state["outc.conv.bias"] = torch.stack([b[0], b[1] - 4, (b[0] + b[1]) / 2])
    config = UNetConfig(**{**bundle.config.to_dict(), "n_classes": 3})
    return ModelBundle(config=config, state_dict=state, label_kind="instance",
                       normalisation=bundle.normalisation)


def predictor(kind: str) -> Predictor:
    return Predictor(nuclei_model(kind), device="cpu", tile_size=64, overlap=16)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects (ids may differ): a bijection
    between their ids, background to background."""
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]).astype(np.int64), axis=1)
    return (len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))
            and not np.any((pairs[0] == 0) != (pairs[1] == 0)))


@pytest.mark.parametrize("kind", ["components", "watershed"])
def test_objects_across_block_edges_get_one_id_each(tmp_path, kind):
    h, w, r = 192, 256, 11
    centres = [(64, 64), (64, 128), (128, 192), (32, 128), (128, 40), (100, 64), (170, 128)]
    yy, xx = np.mgrid[0:h, 0:w]
    truth = np.zeros((h, w), np.int32)
    for i, (cy, cx) in enumerate(centres, start=1):
        truth[(yy - cy) ** 2 + (xx - cx) ** 2 <= r**2] = i
    image = np.where(truth > 0, 200.0, 20.0) + np.random.default_rng(0).normal(0, 8, (h, w))
    result = predict_blocks(predictor(kind), image.astype(np.float32), tmp_path / "l.ome.zarr",
                            instances=True, chunk=32, block=64)
    labels = open_image(result.labels, lazy=False).data
    assert labels.dtype == np.uint32 and result.objects == len(centres)
    found = set()
    for i, (cy, cx) in enumerate(centres, start=1):
        core = (yy - cy) ** 2 + (xx - cx) ** 2 <= (r - 4) ** 2
        ids = np.unique(labels[core])
        assert len(ids) == 1 and ids[0] > 0, (i, ids)  # one object, across 2 or 4 blocks
        found.add(int(ids[0]))
    assert found == set(range(1, len(centres) + 1))


@pytest.mark.parametrize("kind", ["components", "watershed"])
def test_blocks_give_the_objects_of_the_whole_image(tmp_path, kind):
    image, _ = blobs(np.random.default_rng(1), shape=(2, 150, 170), n=14, radius=9)
    pred = predictor(kind)
    whole = pred.predict(image, probabilities=True, instances=True)
    result = predict_blocks(pred, image, tmp_path / "l.ome.zarr",
                            probabilities_path=tmp_path / "p.ome.zarr", instances=True,
                            chunk=32, block=64)
    probs = open_image(result.probabilities, lazy=False).data  # (C, Z, Y, X)
    np.testing.assert_allclose(probs.transpose(1, 0, 2, 3), whole.probabilities, atol=1e-6)
    labels = open_image(result.labels, lazy=False).data
    n = 0
    for z in range(2):
        assert same_partition(labels[z], whole.instances[z])
        n += int(whole.instances[z].max())
    # ids are unique over the stack, numbered 1..N
    assert np.array_equal(np.unique(labels), np.arange(n + 1))
    assert not set(np.unique(labels[0])[1:]) & set(np.unique(labels[1])[1:])


@pytest.mark.parametrize("block", [32, 128])  # blocks smaller than the slice, the slice
def test_classes_without_instances(tmp_path, block):
    image, _ = blobs(np.random.default_rng(2), shape=(1, 100, 90), n=6, radius=8)
    pred = predictor("components")
    result = predict_blocks(pred, image[0], tmp_path / "c.ome.zarr", chunk=32, block=block)
    labels = open_image(result.labels, lazy=False).data
    assert labels.dtype == np.uint8 and result.objects is None
    np.testing.assert_array_equal(labels, pred.predict(image[0]).labels)


def test_percentiles_of_a_slice_read_in_bands(monkeypatch):
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 300.0, (2, 2100, 1999)).astype(np.uint16)  # 2 pixels a sample
    norm = Normalisation(low=2.0, high=99.0)
    monkeypatch.setattr(regions, "BAND_PIXELS", 123_457)  # bands of 61 rows
    for z in range(2):
        assert slice_stats(image, z, norm) == norm.stats(image[z])


def test_ome_zarr_metadata_chunks_and_scale(tmp_path):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    image, _ = blobs(np.random.default_rng(4), shape=(1, 80, 100), n=4, radius=7)
    result = predict_blocks(predictor("components"), image[0], tmp_path / "l.ome.zarr",
                            probabilities_path=tmp_path / "p.ome.zarr", instances=True,
                            scale=[0.5, 0.25], chunk=32, block=64)
    labels = next(iter(Reader(parse_url(str(result.labels)))()))
    assert any(isinstance(spec, Label) for spec in labels.specs)
    assert [a["name"] for a in labels.metadata["axes"]] == ["y", "x"]
    assert labels.metadata["coordinateTransformations"][0] == [
        {"type": "scale", "scale": [0.5, 0.25]}]
    assert labels.data[0].shape == (80, 100) and labels.data[0].chunksize == (32, 32)
    probs = next(iter(Reader(parse_url(str(result.probabilities)))()))
    assert [(a["name"], a["type"]) for a in probs.metadata["axes"]] == [
        ("c", "channel"), ("y", "space"), ("x", "space")]
    assert probs.data[0].shape == (2, 80, 100) and probs.data[0].dtype == np.float32
    np.testing.assert_allclose(np.asarray(probs.data[0]).sum(0), 1, atol=1e-5)


class FailingImage:
    """An image whose reads fail after ``good`` of them, as a disk or a network does."""

    def __init__(self, data: np.ndarray, good: int, error: BaseException):
        self.data, self.good, self.error = data, good, error
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, key):
        if self.good == 0:
            raise self.error
        self.good -= 1
        return self.data[key]


@pytest.mark.parametrize("error", [OSError(5, "Input/output error"), KeyboardInterrupt()])
def test_a_failure_leaves_no_output(tmp_path, error):
    image, _ = blobs(np.random.default_rng(5), shape=(2, 64, 96), n=4, radius=6)
    source = FailingImage(image, good=3, error=error)
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(type(error)):
        predict_blocks(predictor("watershed"), source, folder / "l.ome.zarr",
                       probabilities_path=folder / "p.ome.zarr", instances=True, chunk=32,
                       block=32)
    assert os.listdir(folder) == []


def test_an_existing_output_is_kept_without_overwrite(tmp_path):
    image, _ = blobs(np.random.default_rng(6), shape=(1, 40, 40), n=2, radius=5)
    pred = predictor("components")
    path = tmp_path / "l.ome.zarr"
    predict_blocks(pred, image[0] * 0, path, chunk=32, block=32)
    with pytest.raises(InputError, match="exists; give --overwrite"):
        predict_blocks(pred, image[0], path, chunk=32, block=32)
    assert not open_image(path, lazy=False).data.any()
    predict_blocks(pred, image[0], path, chunk=32, block=32, overwrite=True)
    assert open_image(path, lazy=False).data.any()
    assert sorted(os.listdir(tmp_path)) == ["l.ome.zarr"]


def test_join_over_face_pairs():
    pairs = np.array([[2, 5], [5, 7], [3, 4]])
    component = stitch.join(7, pairs)
    assert component[2] == component[5] == component[7] != component[3] == component[4]
    assert len(set(component.tolist())) == 5  # {0}, {1}, {2,5,7}, {3,4}, {6}
    sizes = np.array([0, 3, 1, 2, 2, 1, 9, 1], float)
    numbered = stitch.keep_numbered(component, sizes, min_size=4)
    assert numbered[0] == 0 and numbered[1] == 0  # background; too small (3)
    assert numbered[2] == numbered[5] == numbered[7] == 0  # 1 + 1 + 1 pixels
    assert numbered[3] == numbered[4] == 1 and numbered[6] == 2


def test_outputs_are_read_back_by_open_image(tmp_path):
    """What predict_blocks writes (NGFF 0.4) is what open_image reads: axes, pixel size,
    the labels hint, the chunks (lazily) and the values (in memory)."""
    image, _ = blobs(np.random.default_rng(8), shape=(2, 70, 90), n=5, radius=7)
    result = predict_blocks(predictor("components"), image, tmp_path / "l.ome.zarr",
                            probabilities_path=tmp_path / "p.ome.zarr", instances=True,
                            scale=[2.0, 0.5, 0.25], chunk=32, block=64)
    lazy = open_image(result.labels, lazy=True)
    whole = open_image(result.labels, lazy=False)
    assert lazy.axes == whole.axes == "ZYX"
    assert lazy.scale == whole.scale == (2.0, 0.5, 0.25)
    assert lazy.labels_hint is True and whole.data.dtype == np.uint32
    assert lazy.data.chunksize == (1, 32, 32)
    np.testing.assert_array_equal(np.asarray(lazy.data), whole.data)
    assert whole.data.max() == result.objects > 1
    probs = open_image(result.probabilities, lazy=False)
    assert probs.axes == "CZYX" and probs.scale == (1.0, 2.0, 0.5, 0.25)
    assert probs.labels_hint is None and probs.data.shape == (2, 2, 70, 90)
    np.testing.assert_allclose(probs.data.sum(0), 1, atol=1e-5)


def second_channel(image, channel):
    """A ``select`` for LazySource: one channel of a (C, Y, X) image."""
    import dataclasses

    return dataclasses.replace(image, data=image.data[channel], axes=image.axes[1:],
                               scale=image.scale[1:])


def test_a_lazy_source_pickles_and_predicts_as_the_array(tmp_path):
    """The source that a cluster's workers open themselves: pickled, it opens the TIFF
    through open_image (a dask array, the chosen channel) and predicts as the array."""
    import pickle

    import tifffile

    from napari_unet.core.io.lazy import LazySource, close_sources

    image, _ = blobs(np.random.default_rng(9), shape=(1, 100, 120), n=6, radius=8)
    two = np.stack([image[0][::-1], image[0]])
    path = tmp_path / "cyx.tif"
    tifffile.imwrite(path, two, tile=(32, 32), imagej=False, metadata={"axes": "CYX"})
    source = pickle.loads(pickle.dumps(LazySource(str(path), None, second_channel, (1,))))
    opened = source.open()
    assert not isinstance(opened, np.ndarray) and opened.shape == (100, 120)
    assert source.open() is opened  # once per process
    pred = predictor("components")
    a = predict_blocks(pred, source, tmp_path / "a.ome.zarr", instances=True, chunk=32,
                       block=64)
    b = predict_blocks(pred, image[0], tmp_path / "b.ome.zarr", instances=True, chunk=32,
                       block=64)
    np.testing.assert_array_equal(open_image(a.labels, lazy=False).data,
                                  open_image(b.labels, lazy=False).data)
    assert source.open() is not opened  # the run closed what it opened
    close_sources()
