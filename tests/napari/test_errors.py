"""Mistakes become notifications; the viewer survives; annotations stay as painted."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet import PLUGIN_NAME

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def test_training_without_annotations_layer(empty_workflow, notifications):
    viewer, widget = empty_workflow
    assert widget.train.start_training() is None
    assert any("annotations layer" in m for m in notifications)
    assert not widget.session.training.running


def test_nothing_annotated(empty_workflow, notifications, run_worker):
    viewer, widget = empty_workflow
    annotations = widget.annotate.create_layer()
    run_worker(widget.train.start_training())
    assert any("nothing is annotated" in m for m in notifications)
    assert widget.session.bundle is None
    assert not annotations.data.any()
    assert widget.train.start.enabled
    assert "nuclei" in viewer.layers


def test_one_class_only(empty_workflow, notifications, run_worker):
    viewer, widget = empty_workflow
    annotations = widget.annotate.create_layer()
    annotations.data[0, 50:60, 50:60] = 2
    before = np.asarray(annotations.data).copy()
    run_worker(widget.train.start_training())
    assert any("only one class" in m for m in notifications)
    np.testing.assert_array_equal(annotations.data, before)


def test_annotations_of_another_shape_are_refused(empty_workflow, notifications):
    viewer, widget = empty_workflow
    wrong = viewer.add_labels(np.zeros((5, 100, 100), np.uint8), name="wrong")
    widget.annotate.layer.value = wrong
    assert widget.session.annotations is None
    assert any("shape" in m for m in notifications)
    assert widget.train.start_training() is None


def test_bad_model_file(empty_workflow, notifications, tmp_path):
    viewer, widget = empty_workflow
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"this is not a model")
    assert not widget.train.model.load_model(bad)
    assert any("not a napari-unet model" in m for m in notifications)
    assert widget.session.bundle is None
    assert not widget.train.model.save_model(tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_predict_without_a_model(empty_workflow, notifications):
    viewer, widget = empty_workflow
    assert widget.predict.predict() is None
    assert any("no model" in m for m in notifications)
    assert "nuclei predictions" not in viewer.layers


def test_accept_without_predictions(annotated_workflow, notifications):
    viewer, widget = annotated_workflow
    before = np.asarray(viewer.layers["nuclei annotations"].data).copy()
    assert widget.correct.accept_corrections() == []
    assert any("Predict first" in m for m in notifications)
    np.testing.assert_array_equal(viewer.layers["nuclei annotations"].data, before)


def test_saves_never_replace_the_image_nor_a_folder(empty_workflow, notifications, tmp_path):
    import tifffile

    from napari_unet._napari.layers import predictions_name
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    viewer, widget = empty_workflow
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, np.full((2, 30, 30), 9, np.uint16))
    before = path.read_bytes()
    image = viewer.open(str(path), plugin=PLUGIN_NAME)[0]
    widget.data.image.value = image
    viewer.add_labels(np.ones((2, 30, 30), np.uint8), name=predictions_name(image))
    assert not widget.predict.save_labels(path)
    assert any("replace an input" in m for m in notifications)
    assert path.read_bytes() == before
    widget.session.set_model(ModelBundle.new(UNetConfig(base_channels=4, depth=2)), "tiny")
    (tmp_path / "dir.pt").mkdir()
    assert not widget.train.model.save_model(tmp_path / "dir.pt")
    assert any("is a folder" in m for m in notifications)
    assert widget.predict.save_labels(tmp_path / "labels.tif")
