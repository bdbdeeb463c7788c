"""Step 3, Train: the model, the settings, Start / Pause / Stop, progress and loss."""

from __future__ import annotations

import time

import napari
from magicgui.widgets import Container, ProgressBar, PushButton
from napari.utils.notifications import show_error, show_warning

from napari_unet.core.errors import NapariUnetError

from ._lifetime import CloseWatcher, Subscriptions
from .combos import row, status_label
from .loss_plot import LossPlot
from .model_panel import ModelPanel
from .state import Session, session_for
from .train_settings import TrainSettings, TrainSettingsForm
from .training import TrainingController, build_request, controller_for

#: Seconds between two updates of the progress bar and the status line.
UI_INTERVAL = 0.25


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "…"
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class TrainPanel(Container):
    """Train the model on the annotations in a background thread."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None,
                 settings: TrainSettings | None = None, controls_elsewhere: bool = False):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.controller: TrainingController = controller_for(self.session)
        self.model = ModelPanel(self.session)
        self.form = TrainSettingsForm(settings)
        self.start = PushButton(text="Train")
        self.pause = PushButton(text="Pause")
        self.stop = PushButton(text="Stop")
        self.progress = ProgressBar(value=0, min=0, max=1000)
        self.progress.native.setTextVisible(False)
        self.status = status_label("Ready.")
        self.plot = LossPlot(height=100)
        for widget in self.model.shape_widgets:
            self.form.add_advanced(widget)
        # Start / Pause / Stop, progress, status and loss: the workflow pins them in view.
        self.controls = Container(labels=False, widgets=[
            row(self.start, self.pause, self.stop), self.progress, self.status])
        self.controls.margins = (0, 0, 0, 0)
        self.controls.native.layout().addWidget(self.plot)
        self.extend([self.model, self.form])
        if not controls_elsewhere:
            self.append(self.controls)
        self.start.changed.connect(self.start_training)
        self.pause.changed.connect(self.toggle_pause)
        self.stop.changed.connect(self.controller.stop)
        c = self.controller
        self._subs = Subscriptions()
        self._subs.connect(c.started, self._on_started)
        self._subs.connect(c.progressed, self._on_progress)
        self._subs.connect(c.paused_changed, self._on_paused)
        self._subs.connect(c.finished, self._on_finished)
        self._subs.connect(self.session.model_changed, self._on_model)
        self._shown = 0.0
        self._watcher = CloseWatcher(self.native, self._on_close)
        self._set_running(c.running)

    @property
    def settings(self) -> TrainSettings:
        return self.form.settings

    def options(self):
        """The next run's :class:`~napari_unet.core.config.TrainOptions` (checked: raises
        :class:`~napari_unet.core.errors.InputError` with a sentence)."""
        return self.settings.options(**self.model.options())

    def start_training(self):
        """Copy the layers, start the worker and return it (``None`` when refused)."""
        if self.controller.running:
            show_warning("Training is already running: stop it before starting another.")
            return None
        s = self.settings
        try:
            request = build_request(self.session, s.every_image, options=self.options(),
                                    snapshot_every=s.preview_every)
        except NapariUnetError as exc:
            show_error(str(exc))
            return None
        self.controller.live_preview = s.live_preview
        return self.controller.start(request)

    def toggle_pause(self) -> None:
        if self.controller.paused:
            self.controller.resume()
        else:
            self.controller.pause()

    # ------------------------------------------------------------ controller
    def _on_started(self) -> None:
        self.plot.clear()
        self.progress.value = 0
        self.status.value = "Preparing the data and the model…"
        self._set_running(True)

    def _on_progress(self, p) -> None:
        self.plot.add(p.iteration, p.loss)
        now = time.perf_counter()
        if now - self._shown < UI_INTERVAL and p.fraction < 1:
            return  # a progress bar repaints the window at once: not at every iteration
        self._shown = now
        self.progress.value = int(1000 * p.fraction)
        text = f"Iteration {p.iteration}"
        if p.total:
            text += f" ({p.run_iteration} of {p.total})"
        text += f" · loss {p.loss:.3f}"
        if p.validation_iou is not None:
            text += f" · IoU {p.validation_iou:.2f}"
        text += f"\n{_duration(p.elapsed)} elapsed, {_duration(p.eta)} left"
        if self.controller.paused:  # the iteration in flight when Pause was pressed
            text = "Paused. " + text
        self.status.value = text

    def _on_paused(self, paused: bool) -> None:
        self.pause.text = "Resume" if paused else "Pause"
        if paused:
            self.status.value = "Paused. " + self.status.value.split("\n")[0]

    def _on_finished(self, kept: bool) -> None:
        self.plot.redraw()
        self._set_running(False)
        bundle = self.session.bundle
        if kept and bundle is not None:
            self.progress.value = 1000
            self.status.value = (
                f"Done: {bundle.iterations} iterations in all.\nPredict, or correct and "
                "train again\nto continue from these weights."
            )
        else:
            self.status.value = "Training did not run:\nsee the message."

    def _set_running(self, running: bool) -> None:
        self.start.enabled = not running
        self.pause.enabled = self.stop.enabled = running
        self.pause.text = "Pause"
        self.form.enabled = not running
        self._on_model(self.session.bundle)

    def _on_model(self, bundle) -> None:
        self.start.text = "Continue training" if bundle is not None else "Train"

    def _on_close(self) -> None:
        self._subs.release()
        self.controller.shutdown()
