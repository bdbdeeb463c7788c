"""Delete, merge and split the 3D objects of a volume in the Correct step, through the
buttons and real clicks on a shown viewer: each edit acts on the whole 3D object, and
*Accept* (slice in view) teaches all of its slices."""

from __future__ import annotations

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from napari_unet.core.io.tiff import write_tiff
from napari_unet.core.predict.result import Prediction
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume

VOXEL = (0.5, 0.2, 0.2)


@pytest.fixture
def volume_objects(make_napari_viewer, tiny_settings, tmp_path):
    """A synthetic volume opened through the Data step, with an annotations layer, and
    its true 3D objects shown as the prediction (written by the Predict panel's own code
    that shows a result)."""
    from napari_unet._napari.workflow import WorkflowWidget

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1280, 800)
    widget = WorkflowWidget(viewer, settings=tiny_settings)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    image_data, truth = nuclei_volume(np.random.default_rng(3), (12, 64, 64),
                                      VolumeStyle(voxel_size=VOXEL, count=10))
    path = tmp_path / "volume.tif"
    write_tiff(path, image_data, axes="ZYX", scale=VOXEL)
    image = widget.data.open_path(path)
    assert "3D volume" in widget.data.volume.runs.value
    annotations = widget.annotate.create_layer()
    annotations.data[2, 5:9, 5:30] = 1  # a background stroke the edits must keep
    truth = truth.astype(np.int32)
    widget.predict._apply(image, None, Prediction(labels=(truth > 0).astype(np.uint8),
                                                  instances=truth.copy()))
    return viewer, widget, image, truth


def _slices(mask: np.ndarray) -> list[int]:
    return [int(z) for z in np.nonzero(mask.any(axis=(1, 2)))[0]]


def _click(viewer, layer, point, qtbot) -> None:
    """A real left click at ``point`` (the layer's pixel coordinates, Z, Y, X)."""
    viewer.dims.set_current_step(0, point[0])
    viewer.camera.center = tuple(layer.data_to_world(point)[-2:])
    qtbot.wait(50)
    canvas = viewer.window._qt_viewer.canvas.native
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton,
                     pos=QPoint(canvas.width() // 2, canvas.height() // 2))
    qtbot.wait(50)


def _inside(mask: np.ndarray, z: int) -> tuple[int, int, int]:
    """A pixel of ``mask`` on slice ``z`` far from its edge."""
    from scipy import ndimage as ndi

    depth = ndi.distance_transform_edt(mask[z])
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return z, int(y), int(x)


def test_delete_a_3d_object_with_a_click_teaches_every_slice_of_it(volume_objects, qtbot,
                                                                   notifications):
    viewer, widget, image, truth = volume_objects
    tools = widget.correct.review.tools
    instances = viewer.layers[f"{image.name} instances"]
    predictions = viewer.layers[f"{image.name} predictions"]
    annotations = widget.session.annotations
    before = np.asarray(annotations.data).copy()
    ids, sizes = np.unique(truth[truth > 0], return_counts=True)
    spans = {int(i): len(_slices(truth == i)) for i in ids}
    target = max(spans, key=lambda i: (spans[i], sizes[list(ids).index(i)]))
    obj = truth == target
    slices = _slices(obj)
    assert len(slices) >= 3
    # Clicked on one of its middle slices, with the slice in view scope.
    tools.delete.native.click()
    assert viewer.layers.selection.active == instances and instances.mode == "pan_zoom"
    _click(viewer, instances, _inside(obj, slices[len(slices) // 2]), qtbot)
    assert not (np.asarray(instances.data) == target).any()  # gone from every slice
    np.testing.assert_array_equal(np.asarray(instances.data)[~obj], truth[~obj])
    assert not np.asarray(predictions.data)[obj].any()
    assert sorted(widget.session.marks(image).pending) == slices
    tools.delete.native.click()  # delete mode off
    assert tools._on_click not in viewer.mouse_drag_callbacks

    viewer.dims.set_current_step(0, slices[0])
    widget.correct.scope.value = "slice"
    widget.correct.accept.native.click()
    after = np.asarray(annotations.data)
    assert (after[obj] == 1).all()  # taught as background, on all its slices
    np.testing.assert_array_equal(after[~obj], before[~obj])
    said = [m for m in notifications if m.startswith("Accepted")][-1]
    assert f"Accepted {int(obj.sum()):,} corrected pixel(s) in {len(slices)} slice(s)" in said
    assert widget.correct.status.value.startswith(
        f"Corrected so far: {int(obj.sum()):,} pixel(s) in {len(slices)} slice(s)")
    assert not widget.session.marks(image).pending


def test_merge_two_3d_objects_and_split_one_in_a_rolled_view(volume_objects, qtbot):
    viewer, widget, image, truth = volume_objects
    tools = widget.correct.review.tools
    instances = viewer.layers[f"{image.name} instances"]
    annotations = widget.session.annotations
    from napari_unet.core.split_merge import object_distance

    ids = [int(i) for i in np.unique(truth) if i > 0]
    gap, a, b = min((object_distance(truth, p, q), p, q) for k, p in enumerate(ids)
                    for q in ids[k + 1:])
    # The two picks may lie on different slices: the objects are 3D.
    za, zb = _slices(truth == a), _slices(truth == b)
    tools.merge.native.click()
    _click(viewer, instances, _inside(truth == a, za[0]), qtbot)
    _click(viewer, instances, _inside(truth == b, zb[-1]), qtbot)
    merged = np.asarray(instances.data).copy()
    keep, gone = min(a, b), max(a, b)
    assert not (merged == gone).any()
    assert (merged[(truth == a) | (truth == b)] == keep).all()
    tools.merge.native.click()

    # Split the largest other object in the X-Z view with a line along Z at its middle x:
    # the plane x = x0 through the line cuts it on every slice.
    sizes = {i: int((merged == i).sum()) for i in ids if i not in (a, b)}
    target = max(sizes, key=sizes.get)
    obj = merged == target
    zs, ys, xs = np.nonzero(obj)
    x0, y0 = int(np.median(xs)), int(np.median(ys))
    viewer.dims.order = (1, 0, 2)  # Y is the axis across the view: Z and X on screen
    viewer.dims.set_current_step(1, y0)
    tools.split.native.click()
    cut = viewer.layers[f"{image.name} cut"]
    cut.add_lines(np.array([[zs.min() - 1, y0, x0], [zs.max() + 1, y0, x0]], float))
    split = np.asarray(instances.data).copy()
    line = obj & (split == 0)
    assert line.any() and (np.nonzero(line)[2] == x0).all()
    assert len(_slices(line)) > 1  # not only the slice in view
    parts = [int(i) for i in np.unique(split[obj]) if i > 0]
    assert len(parts) == 2 and target in parts
    left = split[obj & (np.arange(64)[None, None, :] < x0)]
    right = split[obj & (np.arange(64)[None, None, :] > x0)]
    assert set(left[left > 0]).isdisjoint(set(right[right > 0]))

    widget.correct.scope.value = "slice"
    assert widget.correct.accept_corrections()
    after = np.asarray(annotations.data)
    assert (after[line] == 1).all()
    for part in parts:
        assert (after[split == part] == 2).all()
    assert (after[merged == keep] == 2).all()
    assert (after[2, 5:9, 5:30][truth[2, 5:9, 5:30] == 0] == 1).all()  # the stroke stays


def test_objects_to_review_list_each_3d_object_once_and_a_row_shows_it(volume_objects,
                                                                        qtbot):
    viewer, widget, image, truth = volume_objects
    from napari_unet.core.config import TrainOptions
    from napari_unet.core.train.volume import volume_start_bundle

    # The model a new 3D run starts from (the nuclei model made 3D): its probabilities
    # of the volume rank the objects, computed in the background.
    bundle = volume_start_bundle(TrainOptions(labels_kind="annotation"), 2, VOXEL)
    widget.session.set_model(bundle)
    review = widget.correct.review
    review.relist.native.click()
    qtbot.waitUntil(lambda: review.worker is None and bool(review.items), timeout=120_000)
    ids = [item.id for item in review.items]
    n = len(np.unique(truth)) - 1
    assert len(ids) == len(set(ids)) == min(10, n)  # each 3D object once
    assert all(item.z is None and len(item.centre) == 3 for item in review.items)
    confidence = [item.confidence for item in review.items]
    assert confidence == sorted(confidence)
    item = review.items[1]
    obj = truth == item.id
    assert item.size == int(obj.sum())
    slices = _slices(obj)
    assert review.objects.item(1).text().startswith(
        f"slices {slices[0]}-{slices[-1]} · object {item.id}")
    rect = review.objects.visualItemRect(review.objects.item(1))
    qtbot.mouseClick(review.objects.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    largest = slices[0] + int(np.argmax(obj[slices[0]:slices[-1] + 1].sum(axis=(1, 2))))
    assert viewer.dims.current_step[0] == largest
    instances = viewer.layers[f"{image.name} instances"]
    assert instances.selected_label == item.id
    # Deleting that object drops its row.
    tools = widget.correct.review.tools
    assert tools.delete_at(_inside(obj, largest))
    assert item.id not in [i.id for i in review.items]


def test_predict_says_when_it_zooms_a_volume_to_the_models_voxel_size(volume_objects,
                                                                       run_worker,
                                                                       notifications):
    viewer, widget, image, truth = volume_objects
    from napari_unet.core.config import TrainOptions
    from napari_unet.core.train.volume import volume_start_bundle

    # A model of voxels half as large in y and x: the volume is predicted at twice its
    # pixels along them, and zoomed back.
    bundle = volume_start_bundle(TrainOptions(labels_kind="annotation"), 2, (0.5, 0.1, 0.1))
    widget.session.set_model(bundle)
    widget.predict.scope.value = "stack"
    widget.predict.instances.value = False
    worker = widget.predict.predict()
    said = "zoomed to the model's voxel size (0.5 x 0.1 x 0.1 µm): (12, 64, 64) -> (12, 128, 128)"
    assert widget.predict.status.value.startswith(f"Predicting, {said}")
    assert any(said in m for m in notifications)
    run_worker(worker, timeout=300_000)
    predictions = viewer.layers[f"{image.name} predictions"]
    assert predictions.data.shape == truth.shape  # back at the volume's own voxels
    assert widget.predict.status.value.startswith("Predicted the whole image")
