"""Stop, pause, resume and close while the worker trains."""

from __future__ import annotations

import time

import pytest

from napari_unet._napari.train_settings import TrainSettings

LONG = TrainSettings(budget="seconds", seconds=120, patch_size=64, batch_size=2,
                     learning_rate=1e-2, device="cpu", live_preview=False)


@pytest.fixture
def long_training(annotated_workflow, qtbot):
    """Training of two minutes, started and past its first iterations."""
    viewer, widget = annotated_workflow
    widget.train.form.settings = LONG
    worker = widget.train.start_training()
    assert worker is not None
    qtbot.waitUntil(lambda: len(widget.train.plot.iterations) >= 3, timeout=30_000)
    return viewer, widget, worker


def test_stop_returns_promptly_and_keeps_the_weights(long_training, qtbot):
    viewer, widget, worker = long_training
    with qtbot.waitSignal(worker.finished, timeout=5000):  # an iteration takes ~0.05 s
        widget.train.stop.changed.emit(True)  # the Stop button
    bundle = widget.session.bundle
    assert bundle is not None
    assert bundle.iterations >= 3
    assert bundle.iterations == widget.train.plot.iterations[-1]
    assert widget.train.start.enabled and not widget.train.stop.enabled


def test_pause_then_resume_continues_the_count(long_training, qtbot):
    viewer, widget, worker = long_training
    controller = widget.session.training
    iterations = widget.train.plot.iterations
    widget.train.toggle_pause()
    assert controller.paused and widget.train.pause.text == "Resume"
    qtbot.wait(600)  # the iteration in flight ends, then nothing moves
    held = list(iterations)
    qtbot.wait(600)
    assert iterations == held
    assert widget.train.status.value.startswith("Paused.")  # not overwritten by progress
    widget.train.toggle_pause()
    assert not controller.paused and widget.train.pause.text == "Pause"
    qtbot.waitUntil(lambda: len(iterations) >= len(held) + 3, timeout=30_000)
    assert iterations == list(range(iterations[0], iterations[0] + len(iterations)))
    with qtbot.waitSignal(worker.finished, timeout=5000):
        controller.stop()
    assert widget.session.bundle.iterations == iterations[-1]


def test_stop_while_paused(long_training, qtbot):
    viewer, widget, worker = long_training
    widget.train.toggle_pause()
    qtbot.wait(300)
    with qtbot.waitSignal(worker.finished, timeout=5000):
        widget.session.training.stop()
    assert widget.session.bundle is not None


def test_closing_the_widget_stops_the_worker(long_training, qtbot):
    viewer, widget, worker = long_training
    job = widget.session.training.job
    start = time.perf_counter()
    viewer.window.remove_dock_widget(widget)
    assert job.done.is_set()  # the dock waited for the training thread to end
    assert time.perf_counter() - start < 5
    qtbot.waitUntil(lambda: not widget.session.training.running, timeout=5000)


def test_closing_the_viewer_stops_the_worker(long_training, qtbot):
    viewer, widget, worker = long_training
    job = widget.session.training.job
    viewer.close()
    assert job.done.is_set()
