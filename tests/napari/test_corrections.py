"""Accepting corrections through the Correct step: only what the user changed on the
predictions becomes annotation, and what they erased stays background."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_unet._napari.training import CORRECTED_WEIGHT, build_request

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _predicted(viewer, widget, run_worker):
    """Train the tiny model on the starter strokes and predict slice 0."""
    run_worker(widget.train.start_training())
    widget.predict.scope.value = "slice"
    run_worker(widget.predict.predict())
    return viewer.layers["nuclei predictions"]


def _erase_largest_object(predictions, z: int = 0) -> np.ndarray:
    objects, n = ndi.label(np.asarray(predictions.data[z]) > 0)
    assert n > 0, "the model found no object to erase"
    sizes = np.bincount(objects.ravel())[1:]
    target = objects == 1 + int(np.argmax(sizes))
    predictions.data[z][target] = 0
    return target


def test_only_edited_pixels_become_annotation(annotated_workflow, run_worker):
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    predictions = _predicted(viewer, widget, run_worker)
    made = np.asarray(predictions.data[0]).copy()
    before = np.asarray(annotations.data).copy()

    erased = _erase_largest_object(predictions)
    painted = np.zeros_like(erased)
    painted[200:215, 10:25] = True
    painted &= made == 0
    predictions.data[0][painted] = 1
    edited = erased | painted
    assert widget.correct.accept_corrections() == [0]

    after = np.asarray(annotations.data)
    assert (after[0][erased] == 1).all()
    assert (after[0][painted] == 2).all()
    np.testing.assert_array_equal(after[0][~edited], before[0][~edited])
    np.testing.assert_array_equal(after[1:], before[1:])
    weights = build_request(widget.session, every_image=False).weights[0]
    assert (weights[0][edited] == CORRECTED_WEIGHT).all()
    assert (weights[0][~edited] == 1).all() and (weights[1:] == 1).all()


def test_erased_stays_background_annotation(annotated_workflow, run_worker):
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    predictions = _predicted(viewer, widget, run_worker)
    erased = _erase_largest_object(predictions)

    run_worker(widget.correct.accept_and_train())  # accept, then the next training round
    assert widget.session.bundle.iterations == 80
    assert (np.asarray(annotations.data[0])[erased] == 1).all()
    run_worker(widget.predict.predict())  # a new prediction replaces only the predictions
    assert (np.asarray(annotations.data[0])[erased] == 1).all()
    # Accepting again without new edits changes nothing.
    snapshot = np.asarray(annotations.data).copy()
    assert widget.correct.accept_corrections() == []
    np.testing.assert_array_equal(annotations.data, snapshot)


def test_whole_slice_is_an_explicit_choice(annotated_workflow, run_worker, notifications):
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    predictions = _predicted(viewer, widget, run_worker)
    before = np.asarray(annotations.data).copy()

    assert widget.correct.accept_corrections() == []  # nothing edited: nothing accepted
    assert any("not changed the predictions" in m for m in notifications)
    np.testing.assert_array_equal(annotations.data, before)

    widget.correct.whole.value = True
    assert widget.correct.accept_corrections() == [0]
    after = np.asarray(annotations.data)
    free = before[0] == 0
    np.testing.assert_array_equal(after[0][free], np.asarray(predictions.data[0])[free] + 1)
    np.testing.assert_array_equal(after[0][~free], before[0][~free])  # strokes kept
    assert build_request(widget.session, every_image=False).weights[0] is None


def test_the_painted_layer_stays_selected(annotated_workflow, run_worker):
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    widget.annotate.paint_class(2)
    assert viewer.layers.selection.active == annotations
    run_worker(widget.train.start_training())
    assert "nuclei predictions" in viewer.layers
    assert viewer.layers.selection.active == annotations
    assert annotations.mode == "paint"
    widget.predict.probabilities.value = True
    widget.predict.instances.value = True
    run_worker(widget.predict.predict())
    assert "nuclei instances" in viewer.layers
    assert viewer.layers.selection.active == annotations


def test_layers_stay_readable(annotated_workflow, run_worker):
    """The image shows through predictions and annotations, and a stroke's colour is never
    a prediction's."""
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    predictions = _predicted(viewer, widget, run_worker)
    assert predictions.contour >= 1 or predictions.opacity <= 0.5
    assert annotations.opacity < 1
    background = annotations.colormap.color_dict[1]
    assert background[3] * annotations.opacity <= 0.5

    def colors(layer, values):
        return {tuple(np.round(layer.colormap.color_dict[v], 3)) for v in values}

    n = len(widget.session.classes)
    assert colors(annotations, range(1, n + 1)).isdisjoint(colors(predictions, range(1, n)))


def test_status_agrees_with_what_was_accepted(annotated_workflow, run_worker, notifications):
    """The notification and every Correct panel of the viewer give the same count, read
    from the session (slice 0 once read as 'Corrected slices: 0')."""
    from napari_unet._napari.correct_panel import CorrectPanel

    viewer, widget = annotated_workflow
    other = CorrectPanel(viewer, widget.session)  # the standalone "5. Correct" widget
    assert widget.correct.status.value == other.status.value == "No correction accepted yet."
    predictions = _predicted(viewer, widget, run_worker)
    erased = _erase_largest_object(predictions)
    assert widget.correct.accept_corrections() == [0]
    said = next(m for m in notifications if m.startswith("Accepted"))
    assert f"Accepted {int(erased.sum()):,} corrected pixel(s) in 1 slice(s)" in said
    expected = f"Corrected so far: {int(erased.sum()):,} pixel(s) in 1 slice(s) (slice 0)."
    assert widget.correct.status.value == expected
    assert other.status.value == expected
    assert expected in said
    assert widget.session.marks(viewer.layers["nuclei"]).corrected == [0]

    viewer.dims.set_current_step(0, 1)  # a second slice, accepted from the other panel
    run_worker(widget.predict.predict())
    more = _erase_largest_object(predictions, z=1)
    assert other.accept_corrections() == [1]
    total = int(erased.sum() + more.sum())
    expected = f"Corrected so far: {total:,} pixel(s) in 2 slice(s) (slice 0, 1)."
    assert widget.correct.status.value == other.status.value == expected


def test_accept_with_the_annotations_layer_hidden(annotated_workflow, run_worker):
    """napari writes a hidden labels layer's slice view, which it does not compute while
    hidden: Accept writes the slice whole there."""
    viewer, widget = annotated_workflow
    annotations = viewer.layers["nuclei annotations"]
    predictions = _predicted(viewer, widget, run_worker)
    erased = _erase_largest_object(predictions)
    before = np.asarray(annotations.data).copy()
    viewer.dims.set_current_step(0, 2)
    annotations.visible = False
    viewer.dims.set_current_step(0, 0)  # its slice view is not made while it is hidden
    assert widget.correct.accept_corrections() == [0]
    after = np.asarray(annotations.data)
    assert (after[0][erased] == 1).all()
    np.testing.assert_array_equal(after[0][~erased], before[0][~erased])
    np.testing.assert_array_equal(after[1:], before[1:])
