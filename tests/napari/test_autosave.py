"""Annotations are autosaved (every minute when changed, on close, when the layer goes)
and offered back when the annotations layer of the same image is created again."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
import tifffile
from napari.layers import Image

from napari_unet._napari.autosave import AUTOSAVE_ENV, autosave_path, image_key
from napari_unet._napari.sample_data import nuclei
from napari_unet._napari.workflow import WorkflowWidget
from napari_unet._napari.writer import write_labels
from napari_unet.core.io.tiff import read_tiff
from napari_unet.samples import sample_path

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _viewer_with_workflow(make_viewer, tiny_settings):
    viewer = make_viewer()
    for data, meta, _kind in nuclei():
        viewer.add_image(data, **meta)
    widget = WorkflowWidget(viewer, settings=tiny_settings)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    widget.data.image.value = viewer.layers["nuclei"]
    return viewer, widget


def _paint(layer, z: int = 0, value: int = 2) -> None:
    layer.paint((z, 40, 40), value)
    layer.paint((z, 100, 120), 1)


def test_where_autosaves_go(tmp_path, monkeypatch):
    data = np.zeros((8, 8), np.uint8)
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "chosen"))
    key = image_key(Image(data, name="cells"))
    assert autosave_path(Image(data, name="cells")) == (
        tmp_path / f"chosen/cells.{key}.annotations.tif")
    assert autosave_path(Image(data, name="a/b:c")).name == f"a_b_c.{key}.annotations.tif"
    monkeypatch.delenv(AUTOSAVE_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    beside = Image(data, name="renamed", metadata={"path": str(tmp_path / "cells.tif")})
    assert autosave_path(beside) == tmp_path / "cells.annotations.tif"
    user = tmp_path / "home/.napari-unet/autosave"
    assert autosave_path(Image(data, name="cells")) == user / f"cells.{key}.annotations.tif"
    sample = Image(data, name="nuclei", metadata={"path": str(sample_path("nuclei"))})
    assert autosave_path(sample).parent == user  # not into the package


def _stack(folder, value):
    folder.mkdir()
    data = np.full((2, 8, 8), value, np.uint16)
    tifffile.imwrite(folder / "stack.tif", data)
    return Image(data, name="stack", metadata={"path": str(folder / "stack.tif")})


def test_two_images_of_one_name_never_share_an_autosave(tmp_path, monkeypatch):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path / "shared"))
    one, two = _stack(tmp_path / "exp1", 1), _stack(tmp_path / "exp2", 2)
    assert autosave_path(one) != autosave_path(two)
    same = Image(np.full((2, 8, 8), 1, np.uint16), name="stack",
                 metadata={"path": str(tmp_path / "exp1" / "stack.tif")})
    assert autosave_path(same) == autosave_path(one)  # the same file: the same autosave
    # Layers without a file: told apart by their pixels; the same pixels find theirs.
    a, b = Image(np.zeros((8, 8)), name="x"), Image(np.ones((8, 8)), name="x")
    assert autosave_path(a) != autosave_path(b)
    assert autosave_path(a) == autosave_path(Image(np.zeros((8, 8)), name="x"))
    # A file of the same path but another shape is another image.
    other = Image(np.zeros((3, 8, 8)), name="stack",
                  metadata={"path": str(tmp_path / "exp1" / "stack.tif")})
    assert autosave_path(other) != autosave_path(one)


@pytest.mark.parametrize("name", ["x" * 300, "é" * 200, ".", "..", "...hidden", " "])
def test_long_and_odd_names_give_a_usable_file(name, tmp_path, monkeypatch):
    monkeypatch.setenv(AUTOSAVE_ENV, str(tmp_path))
    path = autosave_path(Image(np.zeros((4, 4)), name=name))
    assert len(path.name.encode()) <= 255 and not path.name.startswith(".")
    assert path.parent == tmp_path
    write_labels(str(path), np.ones((4, 4), np.uint8), {})
    assert read_tiff(path).data.sum() == 16


def test_autosaves_at_intervals_when_changed(make_napari_viewer_proxy, tiny_settings, qtbot,
                                             autosave_dir):
    viewer, widget = _viewer_with_workflow(make_napari_viewer_proxy, tiny_settings)
    annotations = widget.annotate.create_layer()
    saver = widget.annotate.autosave
    path = saver.path
    assert path.parent == autosave_dir and path.name.startswith("nuclei.")
    saver.set_interval(0.05)
    qtbot.wait(200)
    assert not path.exists()  # nothing painted yet: nothing written
    _paint(annotations)
    qtbot.waitUntil(lambda: path.exists() and saver.worker is None, timeout=5000)
    np.testing.assert_array_equal(read_tiff(path).data, annotations.data)
    written = path.stat().st_mtime_ns
    qtbot.wait(300)
    assert path.stat().st_mtime_ns == written  # unchanged annotations: not written again
    _paint(annotations, z=3, value=3)
    qtbot.waitUntil(lambda: read_tiff(path).data[3].any(), timeout=5000)
    assert not list(autosave_dir.glob(".*.tmp"))


def test_saved_on_close_and_restored_when_the_image_is_opened_again(
        make_napari_viewer_proxy, tiny_settings, notifications, autosave_dir):
    viewer, widget = _viewer_with_workflow(make_napari_viewer_proxy, tiny_settings)
    annotations = widget.annotate.create_layer()
    _paint(annotations)
    _paint(annotations, z=2, value=3)
    painted = np.asarray(annotations.data).copy()
    path = widget.annotate.autosave.path
    viewer.close()  # long before the first tick of the timer
    np.testing.assert_array_equal(read_tiff(path).data, painted)

    viewer, widget = _viewer_with_workflow(make_napari_viewer_proxy, tiny_settings)
    restored = widget.annotate.create_layer()
    np.testing.assert_array_equal(restored.data, painted)
    assert any("Restored the annotations of 'nuclei'" in m and str(path) in m
               for m in notifications)
    assert widget.session.annotations == restored
    assert not widget.annotate.autosave.dirty


def test_deleting_the_annotations_layer_keeps_them(empty_workflow, notifications, autosave_dir):
    viewer, widget = empty_workflow
    annotations = widget.annotate.create_layer()
    _paint(annotations)
    painted = np.asarray(annotations.data).copy()
    viewer.layers.remove(annotations)
    assert widget.session.annotations is None
    np.testing.assert_array_equal(read_tiff(autosave_path(viewer.layers["nuclei"])).data,
                                  painted)
    np.testing.assert_array_equal(widget.annotate.create_layer().data, painted)


def test_an_autosave_of_another_shape_is_not_loaded(empty_workflow, notifications,
                                                    autosave_dir):
    viewer, widget = empty_workflow
    autosave_dir.mkdir()
    tifffile.imwrite(autosave_path(viewer.layers["nuclei"]), np.ones((2, 30, 30), np.uint8))
    annotations = widget.annotate.create_layer()
    assert not annotations.data.any()
    assert not any("Restored" in m for m in notifications)


def test_a_damaged_autosave_is_reported_and_left_alone(empty_workflow, notifications,
                                                      autosave_dir):
    viewer, widget = empty_workflow
    autosave_dir.mkdir()
    damaged = autosave_path(viewer.layers["nuclei"])
    damaged.write_bytes(b"II*\x00 not much left")
    annotations = widget.annotate.create_layer()
    assert not annotations.data.any()
    assert any("could not be loaded" in m for m in notifications)
    assert damaged.read_bytes() == b"II*\x00 not much left"


def test_autosave_that_cannot_be_written_is_a_warning(empty_workflow, notifications, tmp_path,
                                                      monkeypatch):
    viewer, widget = empty_workflow
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(AUTOSAVE_ENV, str(blocker / "autosave"))
    annotations = widget.annotate.create_layer()
    _paint(annotations)
    assert widget.annotate.autosave.save_now() is None
    assert any("Could not autosave the annotations" in m for m in notifications)
    assert widget.annotate.autosave.dirty  # tried again later
    assert annotations.data.any()


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_crash_while_autosaving_keeps_the_previous_autosave(empty_workflow, notifications,
                                                             autosave_dir, crash_mid_write):
    viewer, widget = empty_workflow
    annotations = widget.annotate.create_layer()
    _paint(annotations)
    path = widget.annotate.autosave.save_now()
    digest = _digest(path)
    _paint(annotations, z=1, value=3)
    crash_mid_write()
    assert widget.annotate.autosave.save_now() is None
    assert _digest(path) == digest
    assert [p.name for p in autosave_dir.iterdir()] == [path.name]
    assert any("No space left" in m for m in notifications)


def test_the_labels_writer_is_atomic(tmp_path, crash_mid_write):
    path = tmp_path / "labels.tif"
    labels = np.zeros((3, 20, 20), np.uint16)
    labels[1, 5:9, 5:9] = 300
    assert write_labels(str(path), labels, {"scale": (2.0, 0.5, 0.5)}) == [str(path)]
    digest = _digest(path)
    crash_mid_write()
    with pytest.raises(OSError, match="No space left"):
        write_labels(str(path), np.ones((3, 20, 20), np.uint8), {})
    assert _digest(path) == digest and [p.name for p in tmp_path.iterdir()] == ["labels.tif"]


def test_training_and_prediction_leave_the_autosave_alone(annotated_workflow, run_worker,
                                                          autosave_dir):
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    _paint(annotations, z=4)
    path = widget.annotate.autosave.save_now()
    digest, painted = _digest(path), np.asarray(annotations.data).copy()
    run_worker(widget.train.start_training())
    widget.predict.scope.value = "stack"
    run_worker(widget.predict.predict())
    time.sleep(0.05)
    assert widget.annotate.autosave.save_now() is None  # nothing changed: nothing written
    assert _digest(path) == digest
    np.testing.assert_array_equal(annotations.data, painted)
