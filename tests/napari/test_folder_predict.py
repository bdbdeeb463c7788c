"""*Predict folder* in the Predict panel: every TIFF of the open image's folder, one labels
file each, files already done skipped, a bad file reported while the others are predicted."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from napari_unet.core.io.tiff import read_tiff

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _model():
    """A small real model with random weights (seeded): it gives mixed labels."""
    import torch

    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    torch.manual_seed(0)
    return ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2))


def _expected(bundle, image: np.ndarray, threshold: float) -> np.ndarray:
    from napari_unet.core.predict.tiles import Predictor

    return Predictor(bundle, device="cpu", foreground_threshold=threshold).predict(image).labels


@pytest.fixture
def folder(tmp_path, rng):
    images = tmp_path / "images"
    images.mkdir()
    shapes = {"a.tif": (2, 64, 64), "b.tif": (64, 64), "c.tif": (2, 48, 80)}
    for name, shape in shapes.items():
        tifffile.imwrite(images / name, rng.integers(0, 255, shape, dtype=np.uint8))
    return images


def _open(widget, path):
    layer = widget.data.open_path(path)
    assert layer is not None and widget.session.image is layer
    return layer


def _press(button) -> None:
    button.native.click()


def test_predicts_each_image_of_the_folder_then_skips_what_is_done(
        empty_workflow, folder, run_worker, tmp_path):
    viewer, widget = empty_workflow
    _open(widget, folder / "a.tif")
    bundle = _model()
    widget.session.set_model(bundle)
    panel = widget.predict.folder
    out = tmp_path / "labels out"
    panel.out.value = str(out)

    _press(panel.run)
    run_worker(panel.worker)
    assert sorted(p.name for p in out.iterdir()) == ["a_labels.tif", "b_labels.tif",
                                                     "c_labels.tif"]
    for name in ("a", "b", "c"):
        image = read_tiff(folder / f"{name}.tif").data
        saved = read_tiff(out / f"{name}_labels.tif").data
        expected = _expected(bundle, image, widget.session.foreground_threshold)
        np.testing.assert_array_equal(saved, expected)
    assert [r.failed for r in panel.results] == [False] * 3
    assert panel.status.value.startswith("3 predicted, 0 skipped, 0 failed")
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif", "b.tif", "c.tif"]

    _press(panel.run)  # nothing new: nothing runs
    assert panel.worker is None and "done already" in panel.status.value

    later = os.stat(out / "c_labels.tif").st_mtime_ns + 10**9
    os.utime(folder / "b.tif", ns=(later, later))  # b changed since its labels were written
    _press(panel.run)
    run_worker(panel.worker)
    assert [r.image.name for r in panel.results] == ["b.tif"]
    assert panel.status.value.startswith("1 predicted, 2 skipped, 0 failed")

    panel.redo.value = True
    _press(panel.run)
    run_worker(panel.worker)
    assert len(panel.results) == 3

    widget.predict.threshold.value = 0.9  # the panel's threshold decides here too
    widget.session.set_model(bundle)  # a changed model: every file is due again
    panel.redo.value = False
    _press(panel.run)
    run_worker(panel.worker)
    assert len(panel.results) == 3
    np.testing.assert_array_equal(read_tiff(out / "a_labels.tif").data,
                                  _expected(bundle, read_tiff(folder / "a.tif").data, 0.9))


def test_a_bad_file_costs_only_its_own_line(empty_workflow, folder, run_worker, notifications):
    viewer, widget = empty_workflow
    (folder / "broken.tif").write_bytes(b"II*\x00 not really a TIFF")
    _open(widget, folder / "a.tif")
    widget.session.set_model(_model())
    panel = widget.predict.folder

    _press(panel.run)
    run_worker(panel.worker)
    failed = [r for r in panel.results if r.failed]
    assert [r.image.name for r in failed] == ["broken.tif"]
    assert sorted(p.name for p in (folder / "predictions").iterdir()) == [
        "a_labels.tif", "b_labels.tif", "c_labels.tif"]
    assert any(m.startswith("broken.tif: error:") for m in notifications)
    assert panel.status.value.startswith("3 predicted, 0 skipped, 1 failed")


def test_needs_an_image_from_a_file_and_a_model(empty_workflow, folder, notifications, tmp_path):
    viewer, widget = empty_workflow  # the sample stack, added from memory
    panel = widget.predict.folder
    widget.session.set_model(_model())
    _press(panel.run)
    assert panel.worker is None
    assert any("image opened from a file" in m for m in notifications)

    _open(widget, folder / "a.tif")
    panel.out.value = str(folder / "a.tif")  # a file, not a folder: refused, nothing written
    _press(panel.run)
    assert panel.worker is None
    assert any("Cannot predict the folder" in m for m in notifications)
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif", "b.tif", "c.tif"]


def test_reads_the_channels_the_model_was_trained_on(empty_workflow, tmp_path, run_worker):
    """As ``napari-unet predict --image FOLDER``: each file's channels are those the model
    records, whatever the Data step shows; a file without them fails on its own line."""
    from dataclasses import replace

    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from tests.conftest import two_channel_blobs

    folder = tmp_path / "channels"
    folder.mkdir()
    stacks = {}
    for name, seed in (("a", 0), ("b", 1)):
        image, _ = two_channel_blobs(np.random.default_rng(seed), shape=(2, 48, 40))
        tifffile.imwrite(folder / f"{name}.tif", image, imagej=True,
                         metadata={"axes": "ZCYX"})
        stacks[name] = image
    tifffile.imwrite(folder / "grey.tif", stacks["a"][:, 0])  # one channel only
    viewer, widget = empty_workflow
    widget.data.open_path(folder / "a.tif")
    assert widget.session.image is not None
    panel = widget.predict.folder
    threshold = widget.session.foreground_threshold

    one = replace(_model(), channels=(1,))  # trained on channel 1 of such files
    widget.session.set_model(one)
    _press(panel.run)
    run_worker(panel.worker)
    out = folder / "predictions"
    for name, image in stacks.items():
        np.testing.assert_array_equal(read_tiff(out / f"{name}_labels.tif").data,
                                      _expected(one, image[:, 1], threshold))
    grey = [r for r in panel.results if r.image.name == "grey.tif"]
    assert len(grey) == 1 and grey[0].failed and "channel" in grey[0].line()

    import torch

    torch.manual_seed(1)
    two = ModelBundle.new(UNetConfig(in_channels=2, n_classes=2, base_channels=4, depth=2))
    assert two.channels == (0, 1)
    widget.session.set_model(two)
    panel.redo.value = True
    _press(panel.run)
    run_worker(panel.worker)
    for name, image in stacks.items():
        np.testing.assert_array_equal(read_tiff(out / f"{name}_labels.tif").data,
                                      _expected(two, image, threshold))
    assert [r.image.name for r in panel.results if r.failed] == ["grey.tif"]
