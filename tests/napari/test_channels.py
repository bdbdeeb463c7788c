"""Channels in the GUI: the Data panel chooses the layers (one per channel) or the
channels of a layer's channel axis, and Train, the live preview and Predict use them."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet._napari.workflow import WorkflowWidget
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from tests.conftest import two_channel_blobs

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _iou(pred, truth) -> float:
    p, t = np.asarray(pred) > 0, np.asarray(truth) > 0
    return float(np.count_nonzero(p & t) / max(1, np.count_nonzero(p | t)))


@pytest.fixture
def workflow(make_napari_viewer, tiny_settings):
    viewer = make_napari_viewer()
    widget = WorkflowWidget(viewer, settings=tiny_settings)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    widget.train.model.pretrained.value = False  # a tiny fresh model: fast
    widget.train.model.base_channels.value = 8
    widget.train.model.depth.value = 2
    return viewer, widget


def _train_and_predict(qtbot, run_worker, widget, truth):
    """Annotate every pixel of the image, press Train, then Predict (whole stack)."""
    annotations = widget.annotate.create_layer()
    assert annotations.data.shape == truth.shape
    annotations.data = to_annotations(truth > 0, "semantic").astype(np.uint8)
    widget.train.start.native.click()
    run_worker(widget.train.controller.worker, timeout=120_000)
    assert widget.session.bundle is not None and widget.session.bundle.iterations == 40
    widget.predict.scope.value = "stack"
    widget.predict.run.native.click()
    run_worker(widget.predict.worker)
    return widget.session.bundle


def test_layers_of_a_split_file_are_the_channels(workflow, qtbot, run_worker, tmp_path,
                                                 notifications):
    viewer, widget = workflow
    image, labels = two_channel_blobs(np.random.default_rng(0))
    path = tmp_path / "cells.tif"
    tifffile.imwrite(path, image, imagej=True, metadata={"axes": "ZCYX"})
    first = widget.data.open_path(path)  # the reader: one layer per channel
    second = viewer.layers["cells [1]"]
    assert first.name == "cells [0]" and widget.session.image == first
    data = widget.data
    assert not data.channels.native.isHidden() and list(data.channels.choices) == [first, second]
    assert data.channels.value == [first] and "one channel (this image)" in data.info.value
    data.choose_channels([second, first])  # the list's order decides, not the clicks'
    assert widget.session.channel_layers == [first, second]
    assert "Model input: 2 channels (cells [0], cells [1])" in data.info.value

    bundle = _train_and_predict(qtbot, run_worker, widget, labels)
    assert bundle.config.in_channels == 2 and bundle.channels == (0, 1)
    predictions = viewer.layers["cells [0] predictions"]
    assert predictions.data.shape == labels.shape
    assert _iou(predictions.data, labels) > 0.8

    # The slice in view of the live preview and Predict: the same two channels.
    widget.predict.scope.value = "slice"
    viewer.dims.set_current_step(0, 1)
    predictions.data = np.zeros_like(predictions.data)
    widget.train.controller.refresh_preview(bundle)
    run_worker(widget.train.controller.preview_worker)
    assert _iou(predictions.data[1], labels[1]) > 0.8 and not predictions.data[0].any()

    # One channel chosen for a model of two: a notification, no prediction.
    data.choose_channels([second])
    before = np.array(predictions.data)
    assert widget.predict.predict() is None
    assert any("model reads 2 channels" in m and "Channels" in m for m in notifications)
    assert np.array_equal(predictions.data, before)
    # Loading the model again chooses its channels again.
    saved = tmp_path / "two.pt"
    bundle.save(saved)
    assert widget.train.model.load_model(saved)
    assert widget.session.channel_layers == [first, second]


def test_channels_of_a_layer_with_a_channel_axis(workflow, qtbot, run_worker):
    viewer, widget = workflow
    image, labels = two_channel_blobs(np.random.default_rng(0), shape=(1, 64, 64))
    layer = viewer.add_image(np.moveaxis(image[0:1], 1, 0)[:, 0])  # (C, Y, X)
    widget.data.image.value = layer
    data = widget.data
    assert not data.channel_axis.native.isHidden() and data.channel_axis.value is None
    data.channel_axis.value = 0  # the first axis holds the channels
    assert "64 × 64" in data.info.value and "2 channels (channel 0, 1)" in data.info.value
    assert list(data.channels.choices) == [0, 1] and data.channels.value == [0, 1]
    bundle = _train_and_predict(qtbot, run_worker, widget, labels[0])
    assert bundle.config.in_channels == 2 and bundle.channels == (0, 1)
    predictions = viewer.layers[f"{layer.name} predictions"]
    assert predictions.data.shape == (64, 64)
    assert _iou(predictions.data, labels[0]) > 0.8


def test_a_model_of_other_channels_loads_and_says_so(workflow, tmp_path, notifications):
    viewer, widget = workflow
    layer = viewer.add_image(np.random.default_rng(0).random((32, 32)), name="grey")
    widget.data.image.value = layer
    path = tmp_path / "three.pt"
    ModelBundle.new(UNetConfig(in_channels=3, base_channels=4, depth=2)).save(path)
    assert widget.train.model.load_model(path)
    assert any("three.pt: the model reads 3 channels" in m for m in notifications)
    widget.annotate.create_layer()
    assert widget.predict.predict() is None
    assert widget.train.start_training() is None  # continuing it needs 3 channels too
    assert any("or start a new model" in m for m in notifications)
    assert "grey predictions" not in viewer.layers


def test_the_gui_and_the_command_line_read_the_same_channels(workflow, tmp_path):
    """The Train button's request holds what ``napari-unet train --channels`` reads from
    the same file, and records the same channels."""
    from napari_unet._napari.training import build_request
    from napari_unet.cli import build_parser, train_options
    from napari_unet.cli.inputs import _load_pairs

    viewer, widget = workflow
    image, labels = two_channel_blobs(np.random.default_rng(0))
    image = np.concatenate([image, image[:, :1] * 2], axis=1)  # a third channel
    path, lab = tmp_path / "cells.tif", tmp_path / "cells_labels.tif"
    tifffile.imwrite(path, image, imagej=True, metadata={"axes": "ZCYX"})
    tifffile.imwrite(lab, to_annotations(labels > 0, "semantic").astype(np.uint8))
    widget.data.open_path(path)
    widget.data.choose_channels([viewer.layers["cells [2]"], viewer.layers["cells [1]"]])
    widget.annotate.create_layer().data = tifffile.imread(lab)
    request = build_request(widget.session, False, options=widget.train.options())
    args = build_parser().parse_args(["train", "--image", str(path), "--labels", str(lab),
                                      "--out", str(tmp_path / "m.pt"), "--channels", "1,2"])
    images, _ = _load_pairs(args)
    assert request.images[0].shape == images[0].shape == (2, 2, 64, 64)
    assert np.array_equal(request.images[0], images[0])
    assert request.options.channels == train_options(args).channels == (1, 2)


def test_one_channel_of_a_lazy_layer_is_predicted_lazily_and_two_are_refused(
        workflow, run_worker, notifications):
    import dask.array as da

    from napari_unet.core.predict.tiles import Predictor

    viewer, widget = workflow
    image, _ = two_channel_blobs(np.random.default_rng(0), shape=(3, 64, 64))
    lazy = da.from_array(np.moveaxis(image, 1, 0), chunks=(1, 1, 64, 64))  # (C, Z, Y, X)
    layer = viewer.add_image(lazy, name="big")
    widget.data.image.value = layer
    widget.data.channel_axis.value = 0
    assert widget.data.channels.value == [0, 1]
    bundle = ModelBundle.new(UNetConfig(in_channels=2, base_channels=4, depth=2), seed=0)
    widget.session.set_model(bundle)
    widget.predict.scope.value = "stack"
    assert widget.predict.predict() is None  # two channels of a lazy image: not read whole
    assert any("too large to hold in memory and has 2 channels" in m for m in notifications)
    assert "big predictions" not in viewer.layers

    one = ModelBundle.new(UNetConfig(base_channels=4, depth=2), seed=0)
    widget.session.set_model(one)
    widget.data.channels.value = [1]
    worker = widget.predict.predict()
    assert worker is not None
    run_worker(worker)
    predictions = viewer.layers["big predictions"]
    assert not isinstance(predictions.data, np.ndarray)  # zarr-backed, slice by slice
    expected = Predictor(one, device="cpu").predict(image[:, 1]).labels
    np.testing.assert_array_equal(np.asarray(predictions.data[...]), expected)
