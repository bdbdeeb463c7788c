"""Bad input in the plugin: each one becomes a napari notification, never a crash.

Odd but usable images (16-bit, float with NaN and infinity, constant) train and predict.
Faults at run time (out of memory, a failing GPU) are simulated by a model whose forward
raises what torch raises.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import tifffile
import torch

from napari_unet import PLUGIN_NAME
from napari_unet._napari.train_panel import TrainPanel
from napari_unet._napari.train_settings import TrainSettings
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNet, UNetConfig

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")
RNG = np.random.default_rng(5)
LONG = TrainSettings(budget="seconds", seconds=120, patch_size=64, batch_size=2,
                     learning_rate=1e-2, device="cpu", live_preview=False)


def _tiny_model(n_classes: int = 2, in_channels: int = 1) -> ModelBundle:
    return ModelBundle.new(UNetConfig(n_classes=n_classes, in_channels=in_channels,
                                      base_channels=4, depth=2))


def _raise_in_forward(monkeypatch, error, when=lambda call: True):
    calls = []
    original = UNet.forward

    def forward(model, x):
        calls.append(x.shape)
        if when(len(calls)):
            raise error
        return original(model, x)

    monkeypatch.setattr(UNet, "forward", forward)
    return calls


# -------------------------------------------------------------------------- files
def _write(path, make):
    make(path)
    return path


BAD_FILES = {
    "not-a-tiff": (lambda p: p.write_text("notes"), "not a readable TIFF"),
    "empty": (lambda p: p.write_bytes(b""), "empty"),
    "truncated": (lambda p: (tifffile.imwrite(p, np.ones((4, 64, 64), np.uint8) * 9),
                             p.write_bytes(p.read_bytes()[:300])), "truncated|not a readable"),
    "zero-sized": (lambda p: p.write_bytes(_zero_sized_tiff()), "empty axis"),
    "not-tiff-name": (lambda p: p.write_text("x"), ""),
}


def _zero_sized_tiff() -> bytes:
    import io
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tifffile.imwrite(buffer, np.zeros((0, 8, 8), np.uint8))
    return buffer.getvalue()


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_files_are_reported(kind, empty_workflow, notifications, tmp_path):
    viewer, widget = empty_workflow
    make, message = BAD_FILES[kind]
    name = "bad.txt" if kind == "not-tiff-name" else "bad.tif"
    path = _write(tmp_path / name, make)
    before = [layer.name for layer in viewer.layers]
    assert widget.data.open_path(path) is None
    assert any(m.startswith(f"Could not open {name}") and re.search(message, m)
               for m in notifications), notifications
    assert [layer.name for layer in viewer.layers] == before
    assert widget.session.image == viewer.layers["nuclei"]


def test_a_file_larger_than_the_limit_opens_lazily(empty_workflow, tmp_path, monkeypatch):
    import dask.array as da

    viewer, widget = empty_workflow
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64))
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "10000")
    layer = widget.data.open_path(path)
    assert layer is not None and isinstance(layer.data, da.Array)
    assert widget.session.image == layer and len(viewer.layers) == 2
    assert "4 × 64 × 64" in widget.data.info.value


def test_rgb_says_which_channel_to_pick(empty_workflow, notifications, tmp_path):
    viewer, widget = empty_workflow
    path = tmp_path / "color.tif"
    tifffile.imwrite(path, RNG.integers(0, 255, (48, 48, 3), dtype=np.uint8), photometric="rgb")
    layer = widget.data.open_path(path)
    assert layer is not None and layer.rgb and widget.session.image == layer
    assert "Split RGB" in widget.data.info.value
    assert widget.annotate.create_layer() is None
    assert any("RGB image" in m and "Split RGB" in m for m in notifications)
    widget.session.set_model(_tiny_model())
    assert widget.predict.predict() is None
    assert sum("Split RGB" in m for m in notifications) == 2
    assert "color annotations" not in viewer.layers


def test_channels_open_as_layers_and_one_is_annotated(empty_workflow, tmp_path):
    viewer, widget = empty_workflow
    path = tmp_path / "two_channels.tif"
    tifffile.imwrite(path, RNG.integers(0, 255, (3, 2, 48, 48), dtype=np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})
    widget.data.open_path(path)
    assert "two_channels [0]" in viewer.layers and "two_channels [1]" in viewer.layers
    widget.data.image.value = viewer.layers["two_channels [1]"]
    annotations = widget.annotate.create_layer()
    assert annotations.data.shape == (3, 48, 48)


def test_a_5d_stack_cannot_be_annotated(empty_workflow, notifications, tmp_path):
    viewer, widget = empty_workflow
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, RNG.integers(0, 255, (2, 3, 2, 32, 32), dtype=np.uint8), imagej=True,
                     metadata={"axes": "TZCYX"})
    layer = widget.data.open_path(path)
    assert layer.ndim == 4  # channels split into layers, time and Z remain
    assert widget.annotate.create_layer() is None
    assert any("4 dimensions" in m and "one time point" in m for m in notifications)


def test_labels_stored_as_floats_open_as_labels(make_napari_viewer_proxy, tmp_path):
    viewer = make_napari_viewer_proxy()
    path = tmp_path / "cells_labels.tif"
    labels = np.zeros((32, 32), np.float32)
    labels[4:10, 4:10] = 3.0
    tifffile.imwrite(path, labels)
    [layer] = viewer.open(str(path), plugin=PLUGIN_NAME)
    assert layer.__class__.__name__ == "Labels"
    assert np.issubdtype(layer.data.dtype, np.integer) and layer.data.max() == 3


def test_negative_annotations_are_refused(empty_workflow, notifications, run_worker, tmp_path):
    viewer, widget = empty_workflow
    path = tmp_path / "nuclei_labels.tif"
    labels = np.zeros(viewer.layers["nuclei"].data.shape, np.int16)
    labels[0, :10] = 1
    labels[0, 20:30] = -2
    tifffile.imwrite(path, labels, metadata={"axes": "ZYX", "labels": True})
    [layer] = viewer.open(str(path), plugin=PLUGIN_NAME)
    widget.annotate.layer.value = layer
    assert widget.session.annotations == layer
    run_worker(widget.train.start_training())
    assert any("negative values" in m for m in notifications)
    assert widget.session.bundle is None


# ---------------------------------------------------------- images that must work
def _paint(layer) -> None:
    layer.data[0, 10:30, 10:60] = 1
    layer.data[0, 100:120, 100:120] = 2
    layer.refresh()


@pytest.mark.parametrize("kind", ["uint16", "nan-inf", "constant"])
def test_odd_images_train_and_predict(kind, empty_workflow, notifications, run_worker,
                                      tiny_settings):
    viewer, widget = empty_workflow
    data = np.asarray(viewer.layers["nuclei"].data)
    if kind == "uint16":
        image = data.astype(np.uint16) * 200
    elif kind == "nan-inf":
        image = data.astype(np.float32)
        image[:, :5] = np.nan
        image[:, 5:8] = np.inf
        image[:, 8:10] = -np.inf
    else:
        image = np.full(data.shape, 7, np.float32)
    layer = viewer.add_image(image, name=kind)
    widget.data.image.value = layer
    annotations = widget.annotate.create_layer()
    _paint(annotations)
    widget.train.form.settings = TrainSettings(**{**vars(tiny_settings), "iterations": 5})
    run_worker(widget.train.start_training())
    assert widget.session.bundle is not None, notifications
    widget.predict.scope.value = "stack"
    run_worker(widget.predict.predict())
    predictions = viewer.layers[f"{kind} predictions"]
    assert predictions.data.shape == image.shape and predictions.data.max() <= 1
    assert not [m for m in notifications if "failed" in m or "error" in m.lower()]


# -------------------------------------------------------------------------- models
class _RunsCode:
    marker = None

    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


@pytest.mark.parametrize("kind", ["truncated", "newer", "pickle-that-runs-code"])
def test_bad_model_files(kind, empty_workflow, notifications, tmp_path):
    viewer, widget = empty_workflow
    good = tmp_path / "good.pt"
    _tiny_model().save(good)
    path = tmp_path / f"{kind}.pt"
    _RunsCode.marker = tmp_path / "code-ran"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:5000])
        message = "truncated|damaged"
    elif kind == "newer":
        payload = torch.load(good, weights_only=True)
        payload["format_version"] = 7
        torch.save(payload, path)
        message = "newer napari-unet"
    else:
        torch.save({"format": "napari-unet model", "payload": _RunsCode()}, path)
        message = "refused.*nothing in it was run"
    assert not widget.train.model.load_model(path)
    assert any(re.search(message, m) for m in notifications), notifications
    assert widget.session.bundle is None
    assert not _RunsCode.marker.exists()


def test_a_model_with_other_classes(annotated_workflow, run_worker, tmp_path):
    viewer, widget = annotated_workflow
    path = tmp_path / "three.pt"
    _tiny_model(n_classes=3).save(path)
    assert widget.train.model.load_model(path)
    assert len(widget.session.classes) == 3
    run_worker(widget.train.start_training())  # the annotations use classes 1 and 2 only
    assert widget.session.bundle.n_classes == 3
    assert widget.session.bundle.iterations == 40


def test_a_class_beyond_the_models_classes(annotated_workflow, run_worker, tmp_path):
    viewer, widget = annotated_workflow
    path = tmp_path / "two.pt"
    _tiny_model(n_classes=2).save(path)
    assert widget.train.model.load_model(path)
    annotations = viewer.layers["nuclei annotations"]
    annotations.data[0, 0:6, 0:6] = 3
    run_worker(widget.train.start_training())
    assert widget.session.bundle.n_classes == 3


# ------------------------------------------------------------------------ runtime
def test_annotations_edited_while_training(annotated_workflow, qtbot):
    viewer, widget = annotated_workflow
    widget.train.form.settings = LONG
    annotations = viewer.layers["nuclei annotations"]
    painted = np.asarray(annotations.data).copy()
    worker = widget.train.start_training()
    qtbot.waitUntil(lambda: len(widget.train.plot.iterations) >= 2, timeout=30_000)
    request = widget.session.training.job.request
    assert not np.shares_memory(request.annotations[0], annotations.data)
    annotations.data_setitem((np.array([1, 1]), np.array([5, 6]), np.array([5, 6])), 5)
    annotations.data[2] = 0
    np.testing.assert_array_equal(request.annotations[0], painted)  # the copy taken at Start
    with qtbot.waitSignal(worker.finished, timeout=5000):
        widget.train.stop.changed.emit(True)
    assert widget.session.bundle.n_classes == 2  # class 5 came after Start
    assert annotations.data[1, 5, 5] == 5 and not annotations.data[2].any()  # edits kept


def test_stop_before_the_first_iteration(annotated_workflow, notifications, run_worker):
    viewer, widget = annotated_workflow
    worker = widget.train.start_training()
    widget.train.stop.changed.emit(True)
    run_worker(worker)
    assert widget.session.bundle is None
    assert any("before its first iteration" in m for m in notifications)
    assert widget.train.start.enabled and not widget.train.stop.enabled


def test_layers_deleted_during_training(annotated_workflow, qtbot, run_worker):
    viewer, widget = annotated_workflow
    worker = widget.train.start_training()
    qtbot.waitUntil(lambda: len(widget.train.plot.iterations) >= 2, timeout=30_000)
    viewer.layers.remove("nuclei annotations")
    viewer.layers.remove("nuclei")
    run_worker(worker)
    assert widget.session.bundle is not None and widget.session.bundle.iterations == 40
    assert widget.session.image is None and widget.session.annotations is None
    assert widget.train.start.enabled


def test_viewer_closed_during_prediction(annotated_workflow):
    viewer, widget = annotated_workflow
    widget.session.set_model(_tiny_model())
    widget.predict.scope.value = "stack"
    worker = widget.predict.predict()
    assert worker is not None
    done = widget.predict._done
    viewer.close()
    assert done.is_set()  # the panel waited for the prediction thread


def test_two_trainings_at_once(annotated_workflow, notifications, qtbot):
    viewer, widget = annotated_workflow
    widget.train.form.settings = LONG
    worker = widget.train.start_training()
    assert worker is not None
    assert widget.train.start_training() is None
    assert any("already running" in m for m in notifications)
    assert not widget.train.start.enabled
    other = TrainPanel(viewer)  # the Train panel of the plugin menu, same viewer
    viewer.window.add_dock_widget(other, name="train")
    assert not other.start.enabled and other.start_training() is None
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        widget.session.training.stop()
    assert other.start.enabled


@pytest.mark.parametrize(
    ("error", "message"),
    [(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB"),
      "out of memory.*lower the batch or patch size"),
     (RuntimeError("CUDA error: an illegal memory access was encountered"),
      "Training stopped because the GPU failed or disappeared")],
    ids=["out-of-memory", "gpu-gone"],
)
def test_training_faults(error, message, annotated_workflow, notifications, run_worker,
                         monkeypatch):
    viewer, widget = annotated_workflow
    _raise_in_forward(monkeypatch, error)
    run_worker(widget.train.start_training())
    assert any(re.search(message, m) for m in notifications), notifications
    assert widget.session.bundle is None and widget.train.start.enabled
    assert not widget.session.training.running


def test_prediction_recovers_from_running_out_of_memory(annotated_workflow, notifications,
                                                        run_worker, monkeypatch):
    viewer, widget = annotated_workflow
    widget.session.set_model(_tiny_model())
    calls = _raise_in_forward(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"),
                              when=lambda call: call == 1)
    run_worker(widget.predict.predict())
    assert len(calls) >= 2
    assert "nuclei predictions" in viewer.layers
    assert not [m for m in notifications if "memory" in m]


def test_prediction_when_the_gpu_disappears(annotated_workflow, notifications, run_worker,
                                            monkeypatch):
    viewer, widget = annotated_workflow
    widget.session.set_model(_tiny_model())
    _raise_in_forward(monkeypatch, RuntimeError("CUDA error: unspecified launch failure"))
    run_worker(widget.predict.predict())
    assert any("Prediction stopped because the GPU failed" in m for m in notifications)
    assert widget.predict.run.enabled
