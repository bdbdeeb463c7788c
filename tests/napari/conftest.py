"""Fixtures for the plugin's tests: a real viewer, the sample data, tiny models."""

from __future__ import annotations

import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QThreadPool

from napari_unet._napari.sample_data import nuclei, nuclei_annotated
from napari_unet._napari.train_settings import TrainSettings
from napari_unet._napari.workflow import WorkflowWidget


@pytest.fixture(autouse=True)
def autosave_dir(tmp_path, monkeypatch):
    """Annotations autosave into the test's folder, never beside the sample data."""
    folder = tmp_path / "autosave"
    monkeypatch.setenv("NAPARI_UNET_AUTOSAVE_DIR", str(folder))
    return folder


@pytest.fixture
def tiny_settings() -> TrainSettings:
    """Settings for a model small and fast enough for tests."""
    return TrainSettings(budget="iterations", iterations=40, patch_size=64, batch_size=2,
                         learning_rate=1e-2,
                         elastic_sigma=4.0, device="cpu", preview_every=0.2)


def _workflow(viewer, settings: TrainSettings) -> WorkflowWidget:
    widget = WorkflowWidget(viewer, settings=settings)
    viewer.window.add_dock_widget(widget, name="napari-unet")
    # A tiny fresh model, not the shipped nuclei model, keeps these tests fast.
    widget.train.model.pretrained.value = False
    widget.train.model.base_channels.value = 8
    widget.train.model.depth.value = 2
    return widget


@pytest.fixture
def empty_workflow(make_napari_viewer_proxy, tiny_settings):
    """A viewer (behind napari's plugin proxy) with the sample image and the workflow."""
    viewer = make_napari_viewer_proxy()
    for data, meta, _kind in nuclei():
        viewer.add_image(data, **meta)
    widget = _workflow(viewer, tiny_settings)
    widget.data.image.value = viewer.layers["nuclei"]
    return viewer, widget


@pytest.fixture
def annotated_workflow(make_napari_viewer_proxy, tiny_settings):
    """The sample stack with its starter annotations chosen in the workflow."""
    viewer = make_napari_viewer_proxy()
    for data, meta, kind in nuclei_annotated():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = _workflow(viewer, tiny_settings)
    widget.data.image.value = viewer.layers["nuclei"]
    widget.annotate.layer.value = viewer.layers["nuclei annotations"]
    viewer.dims.set_current_step(0, 0)
    return viewer, widget


@pytest.fixture
def notifications():
    """Messages shown to the user as napari notifications during the test."""
    messages: list[str] = []

    def record(notification) -> None:
        messages.append(str(notification.message))

    notification_manager.notification_ready.connect(record)
    yield messages
    notification_manager.notification_ready.disconnect(record)


@pytest.fixture
def run_worker(qtbot):
    """Wait for a started napari thread worker to emit ``finished``; return it."""

    def wait(worker, timeout: int = 60_000):
        assert worker is not None, "the widget refused to start"
        finished: list[bool] = []
        worker.finished.connect(lambda: finished.append(True))
        pool = QThreadPool.globalInstance()
        # A worker that fails at once may finish before the connection above: then it no
        # longer runs and the thread pool is idle.
        qtbot.waitUntil(lambda: bool(finished) or (
            not worker.is_running and pool.activeThreadCount() == 0), timeout=timeout)
        qtbot.wait(20)  # deliver the worker's last queued signals
        return worker

    return wait
