"""The whole loop on the sample data with a tiny model, through the workflow widget."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet._napari.training import CORRECTED_WEIGHT, build_request
from napari_unet.core.io.tiff import read_tiff
from napari_unet.samples import sample_path


def fingerprint(array) -> bytes:
    arr = np.asarray(array)
    return arr.dtype.str.encode() + str(arr.shape).encode() + arr.tobytes()


# The plugin gets napari's proxies: private access from the plugin must stay out.
pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _paint_strokes(layer) -> None:
    """Paint like a user: a few nuclei (2) and background spots (1) on slices 0 and 1."""
    truth = read_tiff(sample_path("nuclei_labels")).data
    layer.brush_size = 7
    for z in (0, 1):
        objects = [i for i in np.unique(truth[z]) if i][:8]
        for i in objects:
            ys, xs = np.nonzero(truth[z] == i)
            layer.paint((z, int(np.median(ys)), int(np.median(xs))), 2)
        ys, xs = np.nonzero(truth[z] == 0)
        pick = np.random.default_rng(z).choice(len(ys), 12, replace=False)
        for k in pick:
            y, x = int(ys[k]), int(xs[k])
            if not truth[z, max(0, y - 5) : y + 6, max(0, x - 5) : x + 6].any():
                layer.paint((z, y, x), 1)


def test_whole_loop(empty_workflow, qtbot, run_worker, tmp_path):
    viewer, widget = empty_workflow
    session = widget.session
    image = viewer.layers["nuclei"]
    # The default a user gets: start from the shipped nuclei model. (A tiny fresh model
    # after 40 iterations is a coin toss whose outcome depends on the CPU.)
    widget.train.model.pretrained.value = True

    # Annotate: create the layer named after the image, paint, see the counts.
    annotations = widget.annotate.create_layer()
    assert annotations.name == "nuclei annotations"
    assert annotations.data.shape == image.data.shape
    assert session.annotations == annotations
    _paint_strokes(annotations)
    qtbot.waitUntil(lambda: "Annotated slices: 2 of 5" in widget.annotate.counts.value,
                    timeout=3000)
    assert "nucleus:" in widget.annotate.counts.value
    painted = fingerprint(annotations.data)

    # Train a few iterations in the worker.
    worker = run_worker(widget.train.start_training())
    assert worker is not None
    bundle = session.bundle
    assert bundle is not None and bundle.iterations == 40
    from napari_unet.core.config import START_ARCHITECTURE

    assert bundle.config == START_ARCHITECTURE
    assert len(widget.train.plot.losses) == 40
    assert fingerprint(annotations.data) == painted

    # Predict the whole stack into one predictions layer.
    widget.predict.scope.value = "stack"
    run_worker(widget.predict.predict())
    predictions = viewer.layers["nuclei predictions"]
    assert predictions.data.shape == image.data.shape
    assert predictions.data.dtype == np.uint8
    assert predictions.data.max() <= bundle.n_classes - 1
    assert np.mean(predictions.data == 0) > 0.5  # most of the sample is background
    assert fingerprint(annotations.data) == painted

    # Predicting again updates the same layer in place.
    viewer.dims.set_current_step(0, 3)
    widget.predict.scope.value = "slice"
    run_worker(widget.predict.predict())
    assert [layer.name for layer in viewer.layers].count("nuclei predictions") == 1
    assert viewer.layers["nuclei predictions"] == predictions
    assert fingerprint(annotations.data) == painted

    # Correct slice 3: erase a square to background, then accept: only the edit is taken.
    made = np.asarray(predictions.data[3]).copy()
    predictions.data[3, 100:130, 100:130] = 0
    edited = made != np.asarray(predictions.data[3])
    assert edited.any()
    before = np.asarray(annotations.data).copy()
    assert widget.correct.accept_corrections() == [3]
    after = np.asarray(annotations.data)
    assert (after[3][edited] == 1).all()
    np.testing.assert_array_equal(after[3][~edited], before[3][~edited])
    np.testing.assert_array_equal(np.delete(after, 3, 0), np.delete(before, 3, 0))
    assert session.marks(image).corrected == [3]  # the slices with corrections, in order
    request = build_request(session, every_image=False)
    assert (request.weights[0][3][edited] == CORRECTED_WEIGHT).all()
    assert (request.weights[0][3][~edited] == 1.0).all()
    assert request.weights[0][0].max() == 1.0
    annotations.undo()
    np.testing.assert_array_equal(annotations.data, before)
    annotations.redo()
    np.testing.assert_array_equal(annotations.data, after)

    # Train again: it continues from the current weights.
    run_worker(widget.train.start_training())
    assert session.bundle.iterations == 80
    assert len(session.bundle.history) == 3  # pre-training and the two runs

    # Save the model and the labels, reload the model.
    model_path = tmp_path / "nuclei.pt"
    assert widget.train.model.save_model(model_path)
    widget.train.model.new_model()
    assert session.bundle is None
    assert widget.train.model.load_model(model_path)
    assert session.bundle.iterations == 80
    assert "nuclei.pt" in widget.train.model.info.value
    labels_path = tmp_path / "nuclei_predictions.tif"
    assert widget.predict.save_labels(labels_path)
    np.testing.assert_array_equal(read_tiff(labels_path).data, predictions.data)


def test_probabilities_and_instances(annotated_workflow, qtbot, run_worker):
    viewer, widget = annotated_workflow
    run_worker(widget.train.start_training())
    widget.predict.probabilities.value = True
    widget.predict.instances.value = True
    widget.predict.scope.value = "stack"
    run_worker(widget.predict.predict())
    probability = viewer.layers["nuclei probability"].data
    assert probability.shape == (5, 256, 256)
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    instances = viewer.layers["nuclei instances"].data
    assert instances.shape == (5, 256, 256) and instances.dtype == np.int32


def test_live_preview_refreshes_the_slice_in_view(annotated_workflow, qtbot, run_worker):
    viewer, widget = annotated_workflow
    session = widget.session
    viewer.dims.set_current_step(0, 2)
    settings = widget.train.settings
    settings.iterations = 60
    widget.train.form.settings = settings
    updates: list[int] = []
    session.training.preview_updated.connect(updates.append)
    run_worker(widget.train.start_training())
    qtbot.waitUntil(lambda: session.training.preview_worker is None, timeout=10_000)
    assert updates and set(updates) == {2}
    assert [layer.name for layer in viewer.layers].count("nuclei predictions") == 1
    assert 2 in session.marks(viewer.layers["nuclei"]).predicted


def test_train_on_every_annotated_image(annotated_workflow, qtbot, run_worker):
    viewer, widget = annotated_workflow
    image = viewer.layers["nuclei"]
    viewer.add_image(np.asarray(image.data)[:2].copy(), name="other")
    other = np.zeros((2, 256, 256), np.uint8)
    other[0, :20] = 1
    other[0, 100:110, 100:110] = 2
    viewer.add_labels(other, name="other annotations")
    settings = widget.train.settings
    settings.every_image = True
    widget.train.form.settings = settings
    request = build_request(widget.session, every_image=True)
    assert [a.shape for a in request.images] == [(5, 256, 256), (2, 256, 256)]
    run_worker(widget.train.start_training())
    assert widget.session.bundle.history[-1]["annotated_pixels"][1] > 100


def test_foreground_threshold_controls_object_size(annotated_workflow, run_worker):
    """A model that calls every pixel foreground with p = 0.9: the threshold decides."""
    import torch

    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    viewer, widget = annotated_workflow
    bundle = ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2))
    state = dict(bundle.state_dict)
    state["outc.conv.weight"] = torch.zeros_like(state["outc.conv.weight"])
    state["outc.conv.bias"] = torch.tensor([0.0, float(np.log(9.0))])  # p(fg) = 0.9
    bundle.state_dict = state
    widget.session.set_model(bundle)
    run_worker(widget.predict.predict())
    predictions = viewer.layers["nuclei predictions"]
    z = widget.session.current_slice()
    assert (predictions.data[z] == 1).all()
    widget.predict.threshold.value = 0.95
    run_worker(widget.predict.predict())
    assert (predictions.data[z] == 0).all()


def test_live_preview_decides_with_the_predict_panels_threshold(annotated_workflow, qtbot,
                                                              run_worker):
    """A three-class model with p(background) 0.4 everywhere: foreground at the default
    threshold (background is not the most likely class), background at 0.7, both in the
    Predict step and in the preview of a training in progress."""
    from napari_unet._napari.training import controller_for
    from tests.conftest import constant_bundle

    viewer, widget = annotated_workflow
    bundle = constant_bundle([0.4, 0.35, 0.25])
    widget.session.set_model(bundle)
    z = widget.session.current_slice()
    controller = controller_for(widget.session)
    for threshold, expected in ((0.5, 1), (0.7, 0), (0.55, 1)):
        widget.predict.threshold.value = threshold
        run_worker(widget.predict.predict())
        predictions = viewer.layers["nuclei predictions"]
        assert (predictions.data[z] == expected).all()
        predictions.data[z] = 2  # the preview must write every pixel again
        controller.refresh_preview(bundle)
        run_worker(controller.preview_worker)
        assert (predictions.data[z] == expected).all(), threshold


def test_edge_and_border_options_reach_the_training(annotated_workflow, run_worker):
    viewer, widget = annotated_workflow
    before = np.asarray(viewer.layers["nuclei annotations"].data).copy()
    settings = widget.train.settings
    assert settings.snap_to_edges and not settings.separate_touching  # the defaults
    settings.iterations = 3
    widget.train.form.settings = settings
    run_worker(widget.train.start_training())
    record = widget.session.bundle.history[-1]
    assert record["edge_weight"] > 0 and record["pixel_weights"] is False
    settings.snap_to_edges, settings.separate_touching = False, True
    widget.train.form.settings = settings
    assert widget.train.form.separate_touching.value and not widget.train.form.snap_to_edges.value
    run_worker(widget.train.start_training())
    record = widget.session.bundle.history[-1]
    assert record["edge_weight"] == 0 and record["pixel_weights"] is True
    assert np.array_equal(viewer.layers["nuclei annotations"].data, before)


def test_image_size_choice_reaches_prediction_and_the_live_preview(annotated_workflow,
                                                                   run_worker):
    """A model that knows objects a sixth the size of the sample's: Auto predicts the
    slice shrunk (until they look 1.5 times the model's) and says so, Full size does not,
    Twice enlarges it and says so; the live preview predicts as the
    Predict panel does (the same labels for the same choice)."""
    import torch

    from napari_unet._napari.training import controller_for
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from napari_unet.core.normalise import Normalisation
    from napari_unet.core.predict.tiles import Predictor
    from napari_unet.core.scale import object_size

    viewer, widget = annotated_workflow
    z = widget.session.current_slice()
    plane = np.asarray(viewer.layers["nuclei"].data[z], np.float32)
    norm = Normalisation()
    bundle = ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2), seed=5)
    # Its last layer amplified and centred: its labels vary over the slice, and with the
    # slice's size.
    state = dict(bundle.state_dict)
    state["outc.conv.weight"] = state["outc.conv.weight"] * 50
    bundle.state_dict = state
    fg = Predictor(bundle, device="cpu", rescale="off").predict(
        plane, probabilities=True).probabilities[1]
    middle = float(np.clip(np.median(fg), 1e-6, 1 - 1e-6))
    state["outc.conv.bias"] = state["outc.conv.bias"] + torch.tensor(
        [0.0, -np.log(middle / (1 - middle))])
    bundle.state_dict = state
    bundle.object_size = object_size(norm.normalise(plane, norm.stats(plane))) / 6
    widget.session.set_model(bundle)
    assert f"objects about {bundle.object_size:.0f} px across" in widget.train.model.info.value
    panel = widget.predict
    assert panel.rescale.value == "auto" == widget.session.rescale
    run_worker(panel.predict())
    predictions = viewer.layers["nuclei predictions"]
    assert predictions.data.shape == viewer.layers["nuclei"].data.shape
    assert "Shrunk to 25 % of its size: its objects look larger" in panel.status.value
    auto = np.asarray(predictions.data[z]).copy()
    assert 0.05 < (auto > 0).mean() < 0.95
    panel.rescale.value = "off"
    assert widget.session.rescale == "off"
    run_worker(panel.predict())
    assert "Shrunk" not in panel.status.value
    full = np.asarray(predictions.data[z]).copy()
    assert not np.array_equal(auto, full)  # a random model answers differently at each size
    panel.rescale.value = 2.0  # "Twice": for objects smaller than the model's
    assert widget.session.rescale == 2.0
    run_worker(panel.predict())
    assert "Enlarged to 200 % of its size." in panel.status.value
    assert predictions.data.shape == viewer.layers["nuclei"].data.shape
    assert not np.array_equal(np.asarray(predictions.data[z]), full)
    panel.rescale.value = "auto"
    controller = controller_for(widget.session)
    predictions.data[z] = 0
    controller.refresh_preview(bundle)
    run_worker(controller.preview_worker)
    np.testing.assert_array_equal(predictions.data[z], auto)
