"""The uncertainty layer and Where next? with a real viewer and a real (tiny) model."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet._napari.guidance_panel import MARK_LAYER, guidance_for
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _tiny_model() -> ModelBundle:
    return ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2), seed=3)


def _inside(region, point) -> bool:
    return all(a <= p < b for a, b, p in zip(region.start, region.stop, point))


def _predict_stack(widget, run_worker):
    widget.session.set_model(_tiny_model())
    widget.predict.scope.value = "stack"
    run_worker(widget.predict.predict(), timeout=600_000)


def test_show_uncertainty_layer_follows_predict_in_place(annotated_workflow, run_worker):
    viewer, widget = annotated_workflow
    widget.predict.uncertainty.show.value = True  # before any prediction: nothing yet
    assert "nuclei uncertainty" not in viewer.layers
    _predict_stack(widget, run_worker)
    layer = viewer.layers["nuclei uncertainty"]
    image = viewer.layers["nuclei"]
    assert layer.data.shape == image.data.shape and layer.data.dtype == np.float32
    assert layer.data.min() >= 0 and layer.data.max() <= 1 and layer.data.max() > 0
    assert layer.blending == "additive" and layer.colormap.name == "magma"
    assert layer.opacity == pytest.approx(0.5)
    assert tuple(layer.contrast_limits) == (0, 1)
    np.testing.assert_allclose(layer.scale, image.scale)
    first = np.array(layer.data, copy=True)
    # Another model, one slice: the same layer is updated, that slice only.
    widget.session.set_model(ModelBundle.new(UNetConfig(n_classes=2, base_channels=4,
                                                        depth=2), seed=11))
    viewer.dims.set_current_step(0, 2)
    widget.predict.scope.value = "slice"
    run_worker(widget.predict.predict(), timeout=600_000)
    assert [x.name for x in viewer.layers].count("nuclei uncertainty") == 1
    assert viewer.layers["nuclei uncertainty"] == layer
    assert not np.array_equal(layer.data[2], first[2])
    np.testing.assert_array_equal(layer.data[0], first[0])
    widget.predict.uncertainty.show.value = False
    assert not layer.visible


def test_where_next_moves_marks_goes_elsewhere_and_skips_what_was_annotated(
        annotated_workflow, run_worker, notifications):
    viewer, widget = annotated_workflow
    button = widget.annotate.where_next
    assert button.go() is None  # no prediction yet: a notification says so
    assert any("Predict" in m for m in notifications)
    _predict_stack(widget, run_worker)
    assert "nuclei uncertainty" not in viewer.layers  # not asked for: not shown

    first = button.go()
    assert first is not None and len(first.start) == 3
    assert viewer.dims.current_step[0] == first.start[0]  # the region's slice
    centre = np.asarray(viewer.camera.center)[-2:]
    scale = np.asarray(viewer.layers["nuclei"].scale[-2:])
    assert _inside(first, (first.start[0], *(centre / scale)))
    mark = viewer.layers[MARK_LAYER]
    assert mark.nshapes == 1 and mark.shape_type == ["rectangle"]
    corners = mark.data[0]
    assert np.all(corners[:, 0] == first.start[0])
    assert corners[:, 1].min() < first.start[1] + 1 and corners[:, 1].max() > first.stop[1] - 1
    # Painting stays possible at once: the annotations layer keeps the selection.
    assert viewer.layers.selection.active == viewer.layers["nuclei annotations"]
    assert "Region 1" in button.status.value

    second = button.go()
    assert second is not None and second.start != first.start
    assert viewer.dims.current_step[0] == second.start[0]
    assert viewer.layers[MARK_LAYER].nshapes == 1  # one mark, moved
    assert np.all(viewer.layers[MARK_LAYER].data[0][:, 0] == second.start[0])

    # A stroke in the first region: it drops out of the list, however often one presses.
    annotations = viewer.layers["nuclei annotations"]
    z, y, x = (int(round(c)) for c in first.centre)
    annotations.data[z, y - 2 : y + 3, x - 2 : x + 3] = 2
    annotations.refresh()
    seen = {button.go().start for _ in range(40)}
    assert first.start not in seen and second.start in seen

    # Training starts from these annotations: the first region may come back after it.
    widget.session.busy_changed.emit(True)
    widget.session.busy_changed.emit(False)
    guidance = guidance_for(widget.session)
    assert not guidance.changed(viewer.layers["nuclei"], np.asarray(annotations.data)).any()


def test_where_next_skips_corrected_regions(annotated_workflow, run_worker):
    viewer, widget = annotated_workflow
    _predict_stack(widget, run_worker)
    button = widget.annotate.where_next
    first = button.go()
    predictions = viewer.layers["nuclei predictions"]
    z, y, x = (int(round(c)) for c in first.centre)
    predictions.data[z, y, x] = 1 - predictions.data[z, y, x]  # a correction
    seen = {button.go().start for _ in range(40)}
    assert first.start not in seen


def test_live_preview_brings_the_uncertainty(annotated_workflow, run_worker, qtbot):
    viewer, widget = annotated_workflow
    widget.predict.uncertainty.show.value = True
    controller = widget.train.controller
    with qtbot.waitSignal(controller.preview_updated, timeout=300_000):
        worker = widget.train.start_training()
        assert worker is not None
    layer = viewer.layers["nuclei uncertainty"]
    assert np.asarray(layer.data[0]).max() > 0
    controller.stop()
    run_worker(worker, timeout=120_000)
    region = widget.annotate.where_next.go()
    assert region is not None and region.start[0] == 0  # the slice the preview predicted
    assert viewer.layers["nuclei uncertainty"] == layer


def _overlap(a, b) -> bool:
    return all(x0 < y1 and y0 < x1 for x0, x1, y0, y1 in zip(a.start, a.stop, b.start, b.stop))


def test_where_next_regions_shown_never_overlap_after_strokes_in_them(
        annotated_workflow, run_worker):
    """A stroke in the region shown changes the ranking: the next presses go to regions
    that overlap none shown since the last training, not to the windows beside the
    stroke."""
    viewer, widget = annotated_workflow
    _predict_stack(widget, run_worker)
    button = widget.annotate.where_next
    annotations = viewer.layers["nuclei annotations"]
    shown = []
    for _ in range(4):
        region = button.go()
        assert region is not None
        assert not any(_overlap(region, other) for other in shown)
        shown.append(region)
        z, y, x = (int(round(c)) for c in region.centre)
        annotations.data[z, y - 1 : y + 2, x - 1 : x + 2] = 2  # a small stroke in it
        annotations.refresh()
