"""Z-stacks as volumes in the plugin: voxel size, volume mode, strokes in any view,
Train -> Predict -> Correct on a tiny synthetic volume, saved and reopened at its size."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet import PLUGIN_NAME
from napari_unet._napari.volume import dims_in_effect
from napari_unet.core.errors import InputError
from napari_unet.core.io.tiff import read_tiff, write_tiff
from napari_unet.core.io.volume import parse_voxel_size, resolve_dims
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume, starter_strokes

VOXEL = (0.5, 0.2, 0.2)


def small_volume(seed: int = 0, shape=(12, 48, 48)):
    rng = np.random.default_rng(seed)
    image, labels = nuclei_volume(rng, shape, VolumeStyle(voxel_size=VOXEL, count=12))
    return image, labels


def unrelated_slices(seed: int = 0, shape=(10, 48, 48)) -> np.ndarray:
    """A pile of unrelated noisy images (DSB-style), no voxel size."""
    return np.random.default_rng(seed).integers(0, 255, shape, dtype=np.uint8)


@pytest.fixture
def volume_file(tmp_path):
    image, _ = small_volume()
    path = tmp_path / "stack.tif"
    write_tiff(path, image, axes="ZYX", scale=VOXEL)
    return path


def test_the_auto_rule_tells_volumes_from_piles_of_images():
    image, _ = small_volume()
    assert resolve_dims("auto", image.shape, VOXEL, image)[0] == "3d"
    assert resolve_dims("auto", image.shape, (1.0, 1.0, 1.0), image)[0] == "3d"
    pile = unrelated_slices()
    assert resolve_dims("auto", pile.shape, (1.0, 1.0, 1.0), pile)[0] == "2d"
    assert resolve_dims("3d", pile.shape, None) == ("3d", "chosen")
    assert resolve_dims("auto", (48, 48), (0.2, 0.2), image[0])[0] == "2d"
    assert parse_voxel_size("0.5 x 0.2 x 0.2", 3) == VOXEL
    assert parse_voxel_size("0.3", 3) == (0.3, 0.3, 0.3)
    assert parse_voxel_size("0.2, 0.2", 2) == (0.2, 0.2)
    for bad in ("0, 1, 1", "nan, 1, 1", "-1 1 1", "inf 1 1", "a, b, c", "1, 1", ""):
        with pytest.raises(InputError):
            parse_voxel_size(bad, 3)


def test_the_data_panel_shows_the_files_voxel_size(empty_workflow, volume_file):
    viewer, widget = empty_workflow
    image = widget.data.open_path(volume_file)
    assert image is not None and widget.session.image == image
    controls = widget.data.volume
    assert controls.voxel.value == "0.5, 0.2, 0.2"
    assert "from the file" in controls.voxel_hint.value
    assert dims_in_effect(widget.session, image)[0] == "3d"
    assert controls.runs.value.startswith("Runs as: 3D volume (12 slices that overlap")
    assert "voxel 0.5 x 0.2 x 0.2" in controls.runs.value
    annotations = widget.annotate.create_layer()
    assert tuple(annotations.scale) == VOXEL
    assert annotations.data.shape == image.data.shape


def test_a_typed_voxel_size_goes_on_every_layer_and_bad_ones_are_refused(
        empty_workflow, notifications):
    viewer, widget = empty_workflow
    image, _ = small_volume()
    layer = viewer.add_image(image, name="vol")
    widget.data.image.value = layer
    controls = widget.data.volume
    assert controls.voxel.value == "1, 1, 1"
    assert "gives no voxel size" in controls.voxel_hint.value
    annotations = widget.annotate.create_layer()
    other = viewer.add_image(unrelated_slices(), name="unrelated")
    assert controls.type_voxel_size("0.3, 0.1, 0.1")
    assert tuple(layer.scale) == (0.3, 0.1, 0.1)
    assert tuple(annotations.scale) == (0.3, 0.1, 0.1)
    assert tuple(other.scale) == (1.0, 1.0, 1.0)  # another image keeps its own
    assert controls.voxel.value == "0.3, 0.1, 0.1"
    assert "voxel 0.3 x 0.1 x 0.1" in controls.runs.value
    for bad in ("0, 0.1, 0.1", "nan, 0.1, 0.1", "-0.3, 0.1, 0.1", "thin"):
        notifications.clear()
        assert not controls.type_voxel_size(bad)
        assert any("Voxel size not set" in m for m in notifications), bad
        assert tuple(layer.scale) == (0.3, 0.1, 0.1)
        assert tuple(annotations.scale) == (0.3, 0.1, 0.1)
        assert controls.voxel.value == "0.3, 0.1, 0.1"
    # Typed in the field and confirmed with Enter, as a user does.
    controls.voxel.native.setText("0.4, 0.1, 0.1")
    controls.voxel.native.editingFinished.emit()
    assert tuple(annotations.scale) == (0.4, 0.1, 0.1)


def test_the_volume_mode_is_chosen_per_image_and_says_what_runs(empty_workflow):
    viewer, widget = empty_workflow
    session, controls = widget.session, widget.data.volume
    pile = viewer.add_image(unrelated_slices(), name="pile")
    volume = viewer.add_image(small_volume()[0], name="volume")
    widget.data.image.value = pile
    assert controls.mode.value == "auto"
    assert controls.runs.value.startswith("Runs as: 2D slices (10 slices that do not overlap")
    widget.data.image.value = volume
    assert dims_in_effect(session, volume)[0] == "3d"
    assert "3D volume (12 slices that overlap" in controls.runs.value
    controls.mode.value = "2d"
    assert session.dims_choice(volume) == "2d"
    assert controls.runs.value == "Runs as: 2D slices (chosen)"
    widget.data.image.value = pile
    assert controls.mode.value == "auto"  # each image keeps its own choice
    controls.mode.value = "3d"
    assert dims_in_effect(session, pile) == ("3d", "chosen")
    assert "3D volume (chosen)" in controls.runs.value
    widget.data.image.value = volume
    assert controls.mode.value == "2d"
    # A 2D image has no volume mode; its pixel size is shown.
    flat = viewer.add_image(small_volume()[0][0], name="flat", scale=(0.2, 0.2))
    widget.data.image.value = flat
    assert not controls.mode_form.visible and controls.voxel.value == "0.2, 0.2"


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 0, 2)])
def test_strokes_in_a_rolled_view_paint_the_right_voxels(empty_workflow, volume_file, qtbot,
                                                          order):
    viewer, widget = empty_workflow
    image = widget.data.open_path(volume_file)
    annotations = widget.annotate.create_layer()
    viewer.dims.order = order  # the Z-Y view (slider on X) or the X-Z view (slider on Y)
    fixed = order[0]
    assert fixed not in viewer.dims.displayed
    centre = (6, 24, 24)
    annotations.brush_size = 5
    annotations.paint(centre, 2)
    data = np.asarray(annotations.data)
    painted = np.argwhere(data == 2)
    assert len(painted) > 0 and data.shape == image.data.shape
    assert set(painted[:, fixed]) == {centre[fixed]}  # one plane of the view in display
    assert len(set(painted[:, 0])) > 1  # a stroke across several slices
    slices = sorted(set(int(z) for z in painted[:, 0]))
    text = ", ".join(str(z) for z in slices[:12])
    qtbot.waitUntil(lambda: "Strokes on slices " + text in widget.annotate.counts.value,
                    timeout=5000)
    assert f"nucleus: {len(painted):,} voxels" in widget.annotate.counts.value
    assert f"({len(slices)} of 12)" in widget.annotate.counts.value


def test_train_predict_correct_and_save_a_volume_through_the_panels(
        empty_workflow, qtbot, run_worker, tmp_path):
    viewer, widget = empty_workflow
    session = widget.session
    image_data, truth = small_volume(1, shape=(12, 64, 64))
    path = tmp_path / "vol.tif"
    write_tiff(path, image_data, axes="ZYX", scale=VOXEL)
    image = widget.data.open_path(path)
    annotations = widget.annotate.create_layer()
    strokes = starter_strokes(np.random.default_rng(0), truth, slices=[2, 6, 9])
    annotations.data = strokes
    qtbot.waitUntil(lambda: "Strokes on slices 2, 6, 9 (3 of 12)" in
                    widget.annotate.counts.value, timeout=5000)
    painted = strokes.copy()

    # A volume trains a 3D model; a few iterations of the tiny one are enough here.
    assert "3D volume" in widget.data.volume.runs.value
    widget.train.form.iterations.value = 6
    widget.train.start.native.click()  # the Train button
    worker = run_worker(widget.train.controller.worker, timeout=300_000)
    assert worker is not None and session.bundle is not None
    assert session.bundle.dims == 3 and session.bundle.iterations == 6
    assert session.bundle.voxel_size == VOXEL
    np.testing.assert_array_equal(annotations.data, painted)  # training never edits them
    # The live preview predicts the slab around the slice in view into that slice.
    controller = widget.train.controller
    if controller.preview_worker is not None:  # a preview of the training still under way
        run_worker(controller.preview_worker, timeout=120_000)
    session.marks(image).predicted.clear()
    viewer.dims.set_current_step(0, 7)
    controller.live_preview = True
    controller.refresh_preview(session.bundle)
    run_worker(controller.preview_worker, timeout=120_000)
    assert session.marks(image).predicted == {7}
    assert viewer.layers[f"{image.name} predictions"].data[7].shape == (64, 64)
    # The preview normalised its slab as the whole volume, computed once for the volume.
    from napari_unet._napari.volume_jobs import preview_request
    from napari_unet.core.predict.volume import volume_stats

    key, stats = session.preview_stats
    assert key is not None
    assert list(stats) == volume_stats(session.bundle.normalisation, np.asarray(image.data))
    again = preview_request(session, session.bundle, 3, "cpu")
    assert again.stats is stats and 0 < len(again.image) < len(image.data)

    widget.predict.scope.value = "stack"
    widget.predict.instances.value = True
    widget.predict.run.native.click()  # the Predict button
    run_worker(widget.predict.worker, timeout=300_000)
    predictions = viewer.layers[f"{image.name} predictions"]
    assert predictions.data.shape == image.data.shape
    assert tuple(predictions.scale) == VOXEL
    assert session.marks(image).predicted == set(range(12))
    objects = viewer.layers[f"{image.name} instances"]
    assert objects.data.shape == image.data.shape and tuple(objects.scale) == VOXEL
    np.testing.assert_array_equal(annotations.data, painted)

    # Correct in the X-Z view: erase a block on the plane y = 30 across slices 3-8.
    viewer.dims.order = (1, 0, 2)
    made = np.asarray(predictions.data).copy()
    edit = np.asarray(predictions.data).copy()
    edit[3:9, 30, 10:40] = 1 - np.clip(made[3:9, 30, 10:40], 0, 1)  # flip class there
    predictions.data = edit
    edited = made != edit
    assert edited.any()
    widget.correct.scope.value = "slice"
    accepted = widget.correct.accept_corrections()
    assert accepted == sorted(set(int(z) for z in np.argwhere(edited)[:, 0]))
    after = np.asarray(annotations.data)
    np.testing.assert_array_equal(after[edited], edit[edited] + 1)  # p -> p + 1
    np.testing.assert_array_equal(after[~edited], painted[~edited])  # nothing else

    # Save the labels and reopen them at the same voxel size.
    out = tmp_path / "vol_labels.tif"
    assert widget.predict.save_labels(out)
    assert read_tiff(out).scale == VOXEL
    reopened = viewer.open(str(out), plugin=PLUGIN_NAME)[0]
    assert tuple(reopened.scale) == VOXEL
    # The annotations through the plugin's writer, as File > Save Selected Layers does.
    written = annotations.save(str(tmp_path / "vol_annotations.tif"), plugin=PLUGIN_NAME)
    back = viewer.open(written[0], plugin=PLUGIN_NAME)[0]
    assert tuple(back.scale) == VOXEL
    np.testing.assert_array_equal(back.data, annotations.data)


def test_the_slice_in_view_of_a_volume_and_a_2d_model_with_objects_joined_across_slices(
        empty_workflow, qtbot, run_worker, tmp_path):
    viewer, widget = empty_workflow
    session = widget.session
    image_data, truth = small_volume(2, shape=(12, 64, 64))
    path = tmp_path / "vol2.tif"
    write_tiff(path, image_data, axes="ZYX", scale=VOXEL)
    image = widget.data.open_path(path)
    annotations = widget.annotate.create_layer()
    annotations.data = starter_strokes(np.random.default_rng(1), truth, slices=[3, 8])
    # 2D slices chosen: a 2D model, its objects numbered slice by slice. It starts from
    # the shipped nuclei model, so that it finds nuclei after a few iterations.
    widget.data.volume.mode.value = "2d"
    widget.train.model.pretrained.value = True
    widget.train.form.iterations.value = 10
    run_worker(widget.train.start_training(), timeout=300_000)
    assert session.bundle is not None and session.bundle.dims == 2
    widget.predict.scope.value = "stack"
    widget.predict.instances.value = True
    run_worker(widget.predict.predict(), timeout=300_000)
    per_slice = np.asarray(viewer.layers[f"{image.name} instances"].data).copy()
    # The same model on the image as a volume: the objects joined across slices.
    widget.data.volume.mode.value = "3d"
    run_worker(widget.predict.predict(), timeout=300_000)
    from napari_unet.core.predict.tiles import Predictor
    from napari_unet.core.predict.volume_instances import predict_stitched

    joined = np.asarray(viewer.layers[f"{image.name} instances"].data)
    ids = [int(i) for i in np.unique(joined) if i]
    spans = [len(np.unique(np.nonzero(joined == i)[0])) for i in ids]
    assert len(ids) >= 3 and np.median(spans) > 1  # objects through several slices
    foreground = np.asarray(viewer.layers[f"{image.name} predictions"].data) > 0
    assert not joined[~foreground].any()  # objects of the predicted foreground only
    assert len(ids) < sum(len(np.unique(z[z > 0])) for z in per_slice)
    # ... and the objects the command line gives: the stacked foreground split in 3D.
    engine = predict_stitched(Predictor(session.bundle, device="cpu",
                                        foreground_threshold=session.foreground_threshold,
                                        rescale=session.rescale),
                              image_data, VOXEL, min_size=widget.predict.min_size.value)
    np.testing.assert_array_equal(joined, engine.instances)
    # Training in 3D refuses to continue the 2D model, with a sentence.
    assert widget.train.start_training() is None
    # A new 3D model; Predict: Slice in view predicts the slab around it into that slice.
    widget.train.model.new_model()
    widget.train.form.iterations.value = 2
    run_worker(widget.train.start_training(), timeout=300_000)
    assert session.bundle.dims == 3
    predictions = viewer.layers[f"{image.name} predictions"]
    predictions.data = np.zeros_like(predictions.data)
    session.marks(image).predicted.clear()
    viewer.dims.set_current_step(0, 4)
    widget.predict.scope.value = "slice"
    run_worker(widget.predict.predict(), timeout=300_000)
    assert session.marks(image).predicted == {4}
    assert "slice 4" in widget.predict.status.value
