"""Images too large for memory in the viewer: the reader hands napari dask arrays, the
annotations are held chunk by chunk, training reads only annotated slices, and the
Predict panel writes a zarr-backed labels layer slice by slice."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr
from npe2 import PluginManifest

import napari_unet
from napari_unet._napari.autosave import autosave_path, restore
from napari_unet._napari.reader import get_reader
from napari_unet.core.io.lazy import open_image
from napari_unet.core.io.sparse import stored_chunks
from napari_unet.core.predict.tiles import Predictor
from tests.conftest import blobs
from tests.core.io.test_lazy import CountingReads, write_ome_zarr

SHAPE = (8, 96, 128)


@pytest.fixture
def big_tiff(tmp_path, monkeypatch):
    """A tiled TIFF stack larger than the memory limit the test sets."""
    image, labels = blobs(np.random.default_rng(3), shape=SHAPE, n=8, radius=7)
    image = (image * 50).astype(np.uint16)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, tile=(32, 32))
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", str(image.nbytes // 4))
    return path, image, labels


def test_reader_gives_napari_dask_arrays_for_big_tiffs_and_ome_zarr(big_tiff, tmp_path,
                                                                   make_napari_viewer):
    path, image, labels = big_tiff
    [(data, meta, kind)] = get_reader(str(path))(str(path))
    assert kind == "image" and isinstance(data, da.Array) and meta["name"] == "big"
    zpath = write_ome_zarr(tmp_path / "big.ome.zarr", image, chunks=(1, 48, 64))
    lpath = write_ome_zarr(tmp_path / "lab.ome.zarr", labels, chunks=(1, 48, 64))
    manifest = PluginManifest.from_file(Path(napari_unet.__file__).parent / "napari.yaml")
    [reader] = manifest.contributions.readers
    assert reader.accepts_directories and "*.zarr" in reader.filename_patterns
    viewer = make_napari_viewer()
    [layer, lab] = [getattr(viewer, f"add_{kind}")(data, **meta)
                    for p in (zpath, lpath) for data, meta, kind in get_reader(str(p))(str(p))]
    assert isinstance(layer.data, da.Array) and layer.data.chunksize == (1, 48, 64)
    assert tuple(layer.scale) == (2.0, 0.5, 0.5) and layer.name == "big"
    assert type(lab).__name__ == "Labels" and isinstance(lab.data, da.Array)
    viewer.dims.set_current_step(0, 5)
    np.testing.assert_array_equal(np.asarray(layer.data[5]), image[5])


def test_predict_panel_writes_a_lazy_stack_slice_by_slice_into_a_zarr_layer(
        big_tiff, make_napari_viewer, qtbot, run_worker, tiny_settings, tmp_path):
    from napari_unet._napari.workflow import WorkflowWidget

    path, image, labels = big_tiff
    [(data, meta, _)] = get_reader(str(path))(str(path))
    counting = CountingReads(data)
    viewer = make_napari_viewer()
    layer = viewer.add_image(counting.array, **meta)
    widget = WorkflowWidget(viewer, settings=dataclasses.replace(tiny_settings, iterations=10))
    viewer.window.add_dock_widget(widget, name="napari-unet")
    widget.train.model.pretrained.value = False
    widget.train.model.base_channels.value = 8
    widget.train.model.depth.value = 2
    widget.data.image.value = layer
    viewer.dims.set_current_step(0, 2)

    # Annotations held chunk by chunk: painting two strokes stores two chunks' worth.
    annotations = widget.annotate.create_layer()
    assert isinstance(annotations.data, zarr.Array)
    annotations.brush_size = 5
    for i in np.unique(labels[2][labels[2] > 0]):  # a dab on each object, a line above
        ys, xs = np.nonzero(labels[2] == i)
        annotations.paint((2, int(np.median(ys)), int(np.median(xs))), 2)
    for x in range(4, 124, 4):
        if not labels[2, :8, max(0, x - 3) : x + 4].any():
            annotations.paint((2, 3, x), 1)
    painted = np.asarray(annotations.data[...])
    assert (painted[2] == 1).sum() > 100 and (painted[2] == 2).sum() > 100
    assert {c[0] for c in stored_chunks(annotations.data)} == {2}
    widget.annotate.update_counts()
    assert "Annotated slices: 1 of 8 (2)" in widget.annotate.counts.value
    assert f"nucleus: {(painted == 2).sum():,} px" in widget.annotate.counts.value

    # Training reads only the annotated slice (and the one in view).
    counting.read.clear()
    run_worker(widget.train.start_training())
    bundle = widget.session.bundle
    assert bundle is not None and bundle.iterations == 10
    assert {c[0] for c in counting.read} <= {2}
    np.testing.assert_array_equal(annotations.data[...], painted)  # never modified

    # Predict the whole stack: each slice read, predicted and written in turn.
    counting.order.clear()
    written: list[int] = []
    widget.predict.scope.value = "stack"
    widget.predict.instances.value = True
    worker = widget.predict.predict()
    assert worker is not None
    worker.yielded.connect(lambda item: written.append(item[0]))
    run_worker(worker)
    predictions = viewer.layers["big predictions"]
    instances = viewer.layers["big instances"]
    assert isinstance(predictions.data, zarr.Array) and isinstance(instances.data, zarr.Array)
    assert written == list(range(8))
    # One slice at a time: its 12 chunks read once, all before any chunk of the next
    # (slice 2, in view, is also read by the canvas).
    order = [c[0] for c in counting.order if c[0] != 2]
    assert order == sorted(order) and order == [z for z in range(8) if z != 2 for _ in range(12)]
    assert widget.predict.progress.value == widget.predict.progress.max == 8
    expected = Predictor(bundle, device="cpu").predict(image, instances=True)
    np.testing.assert_array_equal(predictions.data[...], expected.labels)
    np.testing.assert_array_equal(instances.data[...], expected.instances)
    assert "read lazily" in widget.predict.status.value

    # Saved plane by plane as a label TIFF; the annotations autosave as OME-Zarr labels.
    out = tmp_path / "big_labels.tif"
    assert widget.predict.save_labels(out)
    np.testing.assert_array_equal(tifffile.imread(out), expected.instances)
    saved = widget.annotate.autosave.save_now()
    assert saved == autosave_path(layer) and saved.name.endswith(".annotations.ome.zarr")
    back = open_image(saved, lazy=True)
    np.testing.assert_array_equal(back.data.compute(), painted)
    annotations.data[2] = 0
    assert restore(annotations, layer) == saved
    np.testing.assert_array_equal(annotations.data[...], painted)


def test_corrections_of_a_lazy_stack_become_sparse_annotations(
        big_tiff, make_napari_viewer, run_worker, tiny_settings):
    from napari_unet._napari.workflow import WorkflowWidget

    path, image, labels = big_tiff
    viewer = make_napari_viewer()
    [(data, meta, _)] = get_reader(str(path))(str(path))
    layer = viewer.add_image(data, **meta)
    widget = WorkflowWidget(viewer, settings=tiny_settings)
    widget.data.image.value = layer
    viewer.dims.set_current_step(0, 5)
    annotations = widget.annotate.create_layer()
    from tests.conftest import constant_bundle

    widget.session.set_model(constant_bundle([0.2, 0.8], "semantic"))  # all foreground
    widget.predict.scope.value = "slice"
    run_worker(widget.predict.predict())
    predictions = viewer.layers["big predictions"]
    assert isinstance(predictions.data, zarr.Array)
    assert (predictions.data[5] == 1).all() and not predictions.data[4].any()
    edited = np.asarray(predictions.data[5])
    edited[10:30, 20:60] = 0  # the user erases a false object
    predictions.data[5] = edited
    widget.correct.scope.value = "slice"
    assert widget.correct.accept_corrections() == [5]
    assert isinstance(annotations.data, zarr.Array)
    assert {c[0] for c in stored_chunks(annotations.data)} == {5}
    expected = np.zeros(SHAPE[1:], np.uint8)
    expected[10:30, 20:60] = 1  # erased: background
    np.testing.assert_array_equal(annotations.data[5], expected)
    assert widget.annotate.autosave.dirty
