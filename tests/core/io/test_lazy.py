"""Images that need not fit in memory (napari_unet.core.io.lazy, core.io.sparse): opening TIFF
and OME-Zarr lazily, training from them reading only some chunks, sparse labels saved
and read back, slice-by-slice prediction."""

from __future__ import annotations

import dataclasses
import hashlib
import threading

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import open_image
from napari_unet.core.io.sparse import (
    annotated_slices,
    save_labels_zarr,
    sparse_labels,
    stored_chunks,
    to_sparse,
    write_labels_tiff,
)
from napari_unet.core.io.tiff import read_tiff
from napari_unet.core.labels import LazyAnnotations, instance_to_classes
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.predict.slices import predict_slices
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import Trainer
from tests.conftest import blobs
from tests.core.kit import FAST, TINY


def write_ome_zarr(path, data, axes="zyx", scale=(2.0, 0.5, 0.5), chunks=None, version="0.5"):
    """An OME-Zarr image (one level, "0") as NGFF ``version`` writes it."""
    fmt = 3 if version == "0.5" else 2
    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    ms = {"version": version, "name": "img",
          "axes": [{"name": a, "type": "space"} for a in axes],
          "datasets": [{"path": "0", "coordinateTransformations": [
              {"type": "scale", "scale": list(scale)}]}]}
    if version == "0.5":
        group.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        group.attrs["multiscales"] = [ms]
    arr = group.create_array("0", shape=data.shape, dtype=data.dtype,
                             chunks=chunks or (1, *data.shape[1:]))
    arr[...] = data
    return path


def folder_digest(path) -> str:
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(f.relative_to(path)).encode() + f.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def stack(rng):
    image, labels = blobs(rng, shape=(12, 128, 128), n=8, radius=7)
    return (image * 100).astype(np.uint16), labels


def test_a_tiff_opens_lazily_with_its_pages_as_chunks_and_equals_the_eager_read(tmp_path, stack):
    image, _ = stack
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, image, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "ZYX", "spacing": 3.0})
    lazy = open_image(path, lazy=True)
    eager = open_image(path, lazy=False)
    assert isinstance(lazy.data, da.Array) and isinstance(eager.data, np.ndarray)
    assert lazy.data.chunks[0] == (1,) * 12  # one page per chunk
    assert lazy.axes == eager.axes == "ZYX"
    assert lazy.scale == eager.scale == (3.0, 0.5, 0.5)
    assert lazy.path == path and lazy.name == "stack"
    np.testing.assert_array_equal(lazy.data.compute(), eager.data)
    np.testing.assert_array_equal(eager.data, read_tiff(path).data)


def test_lazy_none_reads_what_fits_and_opens_the_rest_lazily(tmp_path, stack, monkeypatch):
    image, _ = stack
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, image, tile=(64, 64))
    assert isinstance(open_image(path).data, np.ndarray)
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", str(image.nbytes // 2))
    opened = open_image(path)
    assert isinstance(opened.data, da.Array)
    assert opened.data.chunksize == (1, 64, 64)  # the file's tiles
    np.testing.assert_array_equal(opened.data.compute(), image)
    with pytest.raises(InputError, match="GiB allowed"):
        read_tiff(path)  # the eager reader keeps its limit


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_ome_zarr_opens_level_0_with_its_axes_and_scale(tmp_path, stack, version):
    image, _ = stack
    path = write_ome_zarr(tmp_path / "stack.ome.zarr", image, chunks=(1, 64, 64),
                          version=version)
    lazy = open_image(path, lazy=True)
    assert isinstance(lazy.data, da.Array) and lazy.data.chunksize == (1, 64, 64)
    assert lazy.axes == "ZYX" and lazy.scale == (2.0, 0.5, 0.5) and lazy.name == "stack"
    eager = open_image(path)
    assert isinstance(eager.data, np.ndarray)
    np.testing.assert_array_equal(lazy.data.compute(), image)
    np.testing.assert_array_equal(eager.data, image)


def test_bad_zarr_folders_get_one_sentence(tmp_path, stack):
    image, _ = stack
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").create_array("x", shape=(4, 4), dtype="u1")
    with pytest.raises(InputError, match="not an OME-Zarr image.*multiscales"):
        open_image(plain)
    array_only = tmp_path / "array.zarr"
    zarr.create_array(str(array_only), shape=(4, 4), dtype="u1")
    with pytest.raises(InputError, match="zarr array, not an OME-Zarr image"):
        open_image(array_only)
    missing = write_ome_zarr(tmp_path / "missing.ome.zarr", image)
    import shutil

    shutil.rmtree(missing / "0")
    with pytest.raises(InputError, match="level '0' is missing"):
        open_image(missing)
    wrong = write_ome_zarr(tmp_path / "wrong.ome.zarr", image[0], axes="zyx",
                           scale=(1, 1, 1), chunks=(64, 64))
    with pytest.raises(InputError, match="3 axes .* 2 dimensions"):
        open_image(wrong)
    with pytest.raises(InputError, match="does not exist"):
        open_image(tmp_path / "nothing.zarr")
    empty = tmp_path / "empty.zarr"
    empty.mkdir()
    with pytest.raises(InputError, match="not a zarr folder|not an OME-Zarr"):
        open_image(empty)


class CountingReads:
    """A dask array over ``source`` that records each chunk it reads."""

    def __init__(self, source: da.Array):
        self.read: set[tuple[int, ...]] = set()
        self.order: list[tuple[int, ...]] = []  # every read, in turn
        self.lock = threading.Lock()
        self.array = source.map_blocks(self._record, dtype=source.dtype)

    def _record(self, block, block_info=None):
        if block_info is not None:
            with self.lock:
                self.read.add(tuple(block_info[0]["chunk-location"]))
                self.order.append(tuple(block_info[0]["chunk-location"]))
        return block


def test_training_from_a_lazy_stack_reads_only_a_fraction_of_its_chunks(tmp_path, rng,
                                                                         monkeypatch):
    image, labels = blobs(rng, shape=(40, 128, 128), n=8, radius=7)
    image = (image * 100).astype(np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, tile=(32, 32))
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", str(256 * 1024))  # < the stack
    opened = open_image(path)
    assert isinstance(opened.data, da.Array) and opened.data.nbytes > 256 * 1024
    counting = CountingReads(opened.data)
    annotations = sparse_labels(image.shape)
    painted = np.zeros(image.shape, np.uint8)
    for z in (5, 30):  # two annotated slices
        painted[z][labels[z] > 0] = 2
        painted[z][:20] = 1
        annotations[z] = painted[z]
    data = TrainingData.from_annotations([counting.array], [annotations])
    assert not counting.read - {(z, y, x) for z in (5, 30) for y in range(4) for x in range(4)}
    assert data.counts.tolist() == [(painted == 1).sum(), (painted == 2).sum()]
    trainer = Trainer(ModelBundle.new(TINY), data, FAST)
    assert len(list(trainer.fit())) == FAST.iterations
    total = int(np.prod(counting.array.numblocks))
    assert {c[0] for c in counting.read} == {5, 30}
    assert len(counting.read) <= 2 * 16 < total / 10  # 32 of 640 chunks at most
    pred = Predictor(trainer.bundle()).predict(image[5])
    fg, gt = pred.labels > 0, labels[5] > 0
    assert (fg & gt).sum() / (fg | gt).sum() > 0.4


def test_dense_lazy_labels_train_through_their_kind(tmp_path, rng):
    image, labels = blobs(rng, shape=(6, 96, 96), n=6, radius=7)
    img = da.from_array(image, chunks=(1, 48, 48))
    lab = da.from_array(labels, chunks=(1, 96, 96))
    data = TrainingData.from_annotations([img], [LazyAnnotations(lab, "instance")])
    assert data.n_classes == 3  # background, interior, boundary
    assert data.counts.sum() == labels.size  # every pixel: dense labels
    assert data.counts[2] == sum(  # boundaries, found slice by slice
        (instance_to_classes(labels[z]) == 3).sum() for z in range(6))
    assert sum(p.image.shape[0] for p in data.train) + len(data.validation) == 6
    trainer = Trainer(ModelBundle.new(dataclasses.replace(TINY, n_classes=3), "instance"),
                      data, FAST)
    assert len(list(trainer.fit())) == FAST.iterations


def test_sparse_annotations_hold_only_painted_chunks_and_round_trip(tmp_path, stack):
    image, labels = stack
    image_path = write_ome_zarr(tmp_path / "stack.ome.zarr", image, chunks=(1, 64, 64))
    before = folder_digest(image_path / "0")
    ann = sparse_labels(image.shape, np.uint16, chunks=(1, 64, 64))
    ann[2, 10:20, 10:30] = 2
    ann[9, 100:110, 70:75] = 300
    assert stored_chunks(ann) == [(2, 0, 0), (9, 1, 1)]
    assert annotated_slices(ann) == [2, 9]
    target = image_path / "labels" / "annotations"
    save_labels_zarr(target, ann, axes="ZYX", scale=(2.0, 0.5, 0.5), name="annotations")
    assert sorted(p.name for p in (target / "0" / "c").iterdir()) == ["2", "9"]
    assert folder_digest(image_path / "0") == before  # the image is untouched
    group = zarr.open_group(str(image_path / "labels"), mode="r")
    assert group.attrs["ome"]["labels"] == ["annotations"]
    back = open_image(target, lazy=True)
    assert back.labels_hint is True and back.axes == "ZYX" and back.scale == (2.0, 0.5, 0.5)
    np.testing.assert_array_equal(back.data.compute(), ann[...])
    again = to_sparse(back.data, chunks=(1, 64, 64))
    assert stored_chunks(to_sparse(ann)) == stored_chunks(ann)
    assert stored_chunks(again) == stored_chunks(ann)
    # Saved again over the first: replaced whole, no temporary folder left.
    ann[9, 100:110, 70:75] = 0
    save_labels_zarr(target, ann, axes="ZYX")
    assert sorted(p.name for p in (target / "0" / "c").iterdir()) == ["2"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["annotations", "zarr.json"]
    tiff = tmp_path / "annotations.tif"
    write_labels_tiff(tiff, ann, axes="ZYX")
    read = read_tiff(tiff)
    assert read.labels_hint is True and read.data.dtype == np.uint8
    np.testing.assert_array_equal(read.data, ann[...])


def test_labels_with_negative_values_are_not_saved(tmp_path):
    ann = sparse_labels((2, 8, 8), np.int16)
    ann[1, 2, 2] = -3
    with pytest.raises(InputError, match="negative"):
        save_labels_zarr(tmp_path / "l.zarr", ann)
    assert not list(tmp_path.iterdir())


def test_predicting_slice_by_slice_equals_predicting_the_stack(stack):
    image, _ = stack
    bundle = ModelBundle.new(TINY)
    predictor = Predictor(bundle, device="cpu")
    eager = predictor.predict(image[:4], instances=True)
    lazy = da.from_array(image, chunks=(1, 64, 64))[:4]
    got = np.zeros(lazy.shape, np.int32)
    seen = []

    def write(z, labels):
        got[z] = labels

    n = predict_slices(predictor, lazy, write, instances=True,
                       progress=lambda done, total: seen.append((done, total)))
    assert n == 4 and seen[-1] == (4, 4)
    np.testing.assert_array_equal(got, eager.instances)
    stop_after = predict_slices(predictor, lazy, write, should_stop=lambda: True)
    assert stop_after == 0
