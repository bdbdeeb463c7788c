"""Objects to review, split and merge in the Correct step, through the widgets' buttons
and real clicks on a real viewer, on a tiny model trained on the sample stack."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from napari_unet._napari.training import CORRECTED_WEIGHT, build_request
from napari_unet.core.predict.confidence import object_confidence


@pytest.fixture
def reviewed(make_napari_viewer, tiny_settings, qtbot, run_worker):
    """The sample stack, a tiny model trained on its strokes, slice 0 predicted with
    objects through the Predict button, and the list of objects to review filled."""
    from napari_unet._napari.sample_data import nuclei_annotated
    from napari_unet._napari.workflow import WorkflowWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    for data, meta, kind in nuclei_annotated():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = WorkflowWidget(viewer, settings=tiny_settings)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    widget.train.model.pretrained.value = False
    widget.train.model.base_channels.value = 8
    widget.train.model.depth.value = 2
    widget.data.image.value = viewer.layers["nuclei"]
    widget.annotate.layer.value = viewer.layers["nuclei annotations"]
    viewer.dims.set_current_step(0, 0)
    run_worker(widget.train.start_training())
    widget.predict.scope.value = "slice"
    widget.predict.instances.value = True
    widget.predict.probabilities.value = True
    widget.predict.run.native.click()
    run_worker(widget.predict.worker)
    review = widget.correct.review
    qtbot.waitUntil(lambda: review.worker is None and bool(review.items), timeout=60_000)
    return viewer, widget


def _click_canvas_centre(viewer, qtbot) -> None:
    """A real left click in the middle of the canvas."""
    canvas = viewer.window._qt_viewer.canvas.native
    centre = QPoint(canvas.width() // 2, canvas.height() // 2)
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=centre)
    qtbot.wait(50)


def test_list_is_least_certain_first_and_a_row_shows_the_object(reviewed, qtbot):
    viewer, widget = reviewed
    review = widget.correct.review
    instances = viewer.layers["nuclei instances"]
    labels = np.asarray(instances.data[0])
    fg = np.asarray(viewer.layers["nuclei probability"].data[0])
    # The model has two classes: its confidence is the foreground margin.
    probabilities = np.stack([1 - fg, fg])
    expected = object_confidence(labels, probabilities)
    worst = sorted(expected, key=lambda i: (expected[i], i))[: len(review.items)]
    assert [item.id for item in review.items] == worst
    assert review.objects.count() == len(review.items) == min(10, len(expected))
    got = [item.confidence for item in review.items]
    assert got == sorted(got)
    np.testing.assert_allclose(got, [expected[i] for i in worst], atol=1e-4)

    k = min(2, len(review.items) - 1)
    item = review.items[k]
    viewer.dims.set_current_step(0, 3)
    viewer.camera.center = (0, 0, 0)
    list_item = review.objects.item(k)
    rect = review.objects.visualItemRect(list_item)
    qtbot.mouseClick(review.objects.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert viewer.dims.current_step[0] == item.z == 0
    world = instances.data_to_world((item.z, *item.centre))
    np.testing.assert_allclose(viewer.camera.center[-2:], world[-2:], atol=1e-6)
    assert instances.selected_label == item.id
    assert np.asarray(instances.data[0])[tuple(np.round(item.centre).astype(int))] in (
        item.id, 0)  # the centre of a crescent may fall outside it


def test_split_and_merge_become_annotations(reviewed, qtbot, notifications):
    viewer, widget = reviewed
    tools = widget.correct.review.tools
    instances = viewer.layers["nuclei instances"]
    predictions = viewer.layers["nuclei predictions"]
    annotations = viewer.layers["nuclei annotations"]
    before = np.asarray(annotations.data).copy()
    labels = np.asarray(instances.data[0]).copy()

    # Split the largest object with a vertical line drawn through its middle.
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    target = int(np.argmax(sizes))
    ys, xs = np.nonzero(labels == target)
    x = int(np.median(xs))
    tools.split.native.click()
    cut = viewer.layers["nuclei cut"]
    assert viewer.layers.selection.active == cut and cut.mode == "add_line"
    cut.add_lines(np.array([[0, ys.min() - 3, x], [0, ys.max() + 3, x]], float))
    split = np.asarray(instances.data[0]).copy()
    line = (labels == target) & (split == 0)
    assert line.any() and (np.nonzero(line)[1] == x).all()
    parts = [i for i in np.unique(split[labels == target]) if i > 0]
    assert len(parts) == 2 and target in parts
    assert len(cut.data) == 0  # the drawn line is used up
    assert (np.asarray(predictions.data[0])[line] == 0).all()

    # Merge the two objects closest to each other with two clicks on the canvas.
    from napari_unet.core.split_merge import object_distance

    current = np.asarray(instances.data[0]).copy()
    ids = [i for i in np.unique(current) if i > 0 and i not in parts]
    pairs = [(object_distance(current, a, b), a, b) for k, a in enumerate(ids)
             for b in ids[k + 1:]]
    gap_px, a, b = min(pairs)
    tools.merge.native.click()
    assert viewer.layers.selection.active == instances
    for k in (a, b):
        yy, xx = np.nonzero(current == k)
        j = int(np.argmin((yy - yy.mean()) ** 2 + (xx - xx.mean()) ** 2))
        viewer.camera.center = tuple(instances.data_to_world((0, yy[j], xx[j]))[-2:])
        _click_canvas_centre(viewer, qtbot)
    merged = np.asarray(instances.data[0]).copy()
    keep = min(a, b)
    assert not (merged == max(a, b)).any()
    gap = (current == 0) & (merged == keep)
    if gap_px > 1:  # apart: the gap between them is filled
        assert gap.any()
    from scipy.ndimage import distance_transform_edt

    near = ((distance_transform_edt(current != a) <= gap_px + 2)
            & (distance_transform_edt(current != b) <= gap_px + 2))
    assert near[gap].all()  # only background where the two face each other
    tools.merge.native.click()  # merge mode off

    # Accept: the line is background, the parts and the merged object foreground.
    widget.correct.accept.native.click()
    after = np.asarray(annotations.data)
    assert (after[0][line] == 1).all()
    for part in parts:
        assert (after[0][split == part] == 2).all()
    assert (after[0][merged == keep] == 2).all()
    if gap.any():
        assert (after[0][gap] == 2).all()
    touched = (labels == target) | (merged == keep)
    np.testing.assert_array_equal(after[0][~touched], before[0][~touched])
    np.testing.assert_array_equal(after[1:], before[1:])
    weights = build_request(widget.session, every_image=False).weights[0]
    assert (weights[0][line] > CORRECTED_WEIGHT).all()  # the border between the parts
    assert (weights[0][touched] >= CORRECTED_WEIGHT).all()
    assert (weights[0][~touched] == 1).all()
    # The status agrees with the notification and with what was written.
    accepted = int(touched.sum())
    said = [m for m in notifications if m.startswith("Accepted")][-1]
    assert f"Accepted {accepted:,} corrected pixel(s) in 1 slice(s)" in said
    assert widget.correct.status.value == (
        f"Corrected so far: {accepted:,} pixel(s) in 1 slice(s) (slice 0).")


def test_list_ranks_from_the_probabilities_predict_kept(annotated_workflow, qtbot, run_worker):
    """Predict with objects keeps its probabilities (even with no probability layer) and
    the list ranks from them; another model's list predicts again."""
    from dataclasses import replace

    viewer, widget = annotated_workflow
    session, review = widget.session, widget.correct.review
    run_worker(widget.train.start_training())
    widget.predict.scope.value = "slice"
    widget.predict.instances.value = True
    widget.predict.run.native.click()
    run_worker(widget.predict.worker)
    qtbot.waitUntil(lambda: review.worker is None and bool(review.items), timeout=60_000)
    assert "nuclei probability" not in viewer.layers  # not asked for
    marks = session.marks(viewer.layers["nuclei"])
    kept = marks.probabilities[0]
    labels = np.asarray(viewer.layers["nuclei instances"].data[0])
    assert kept.shape == (2, *labels.shape)
    confidence = object_confidence(labels, kept)
    assert len(confidence) >= 2
    assert [item.id for item in review.items] == sorted(
        confidence, key=lambda i: (confidence[i], i))[: len(review.items)]

    # Make the surest object's kept probabilities a coin toss: listed again, it is first.
    surest = max(confidence, key=confidence.get)
    kept[:, labels == surest] = 0.5
    review.relist.native.click()
    run_worker(review.worker)
    assert review.items[0].id == surest and review.items[0].confidence < 1e-6

    # Another model (the same weights in a new bundle): its own probabilities, not those.
    session.set_model(replace(session.bundle))
    review.relist.native.click()
    run_worker(review.worker)
    assert review.items[0].id != surest
    np.testing.assert_allclose([item.confidence for item in review.items],
                               [confidence[item.id] for item in review.items], atol=1e-4)
