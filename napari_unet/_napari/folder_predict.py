"""Predict every TIFF of the open image's folder, as ``napari-unet predict --image FOLDER
--out OUT`` does: one ``<name>_labels.tif`` per image in the output folder, files already
done skipped unless *Redo* is ticked, a bad file reported on its own line while the
others are predicted. The files are read, predicted and written one at a time in a
worker thread; the viewer stays usable and *Stop* ends the run after the current file.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from magicgui.widgets import CheckBox, Container, FileEdit, ProgressBar, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtWidgets import QSizePolicy

from .combos import form, row, status_label

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from napari_unet.core.predict.files import FileResult, Job, Settings

#: The output folder used when none is chosen: inside the images' folder.
DEFAULT_OUT = "predictions"


def image_folder(layer) -> Path | None:
    """The folder of the file ``layer`` was opened from, or ``None``."""
    if layer is None:
        return None
    source = layer.metadata.get("path") or getattr(layer.source, "path", None)
    return Path(source).parent if source else None


def _run(jobs: list[Job], bundle, options: dict, settings: Settings,
         stop: threading.Event) -> Iterator[FileResult]:
    """Predict ``jobs`` one by one in the worker thread (torch imported here). Each file
    is read as the command line's folder prediction reads it: the channels the model was
    trained on (:class:`~napari_unet.core.io.selection.ChannelReader`)."""
    from napari_unet.core.io.selection import ChannelReader
    from napari_unet.core.predict.files import run_job
    from napari_unet.core.predict.tiles import Predictor

    read = ChannelReader(model_channels=bundle.channels)
    predictor = Predictor(bundle, **options)
    for job in jobs:
        if stop.is_set():
            return
        job.labels.parent.mkdir(parents=True, exist_ok=True)
        yield run_job(job, predictor, settings, read)


class FolderPrediction(Container):
    """*Predict folder*: the controls and the run, for the Predict panel.

    ``settings()`` gives the panel's choices (objects, smallest object), ``options()`` the
    predictor's (device, threshold) and ``model()`` the model and when it last changed.
    """

    def __init__(self, session, settings: Callable[[], Settings],
                 options: Callable[[], dict], model: Callable[[], tuple]):
        super().__init__(labels=False)
        self.session = session
        self._settings, self._options, self._model = settings, options, model
        self.out = FileEdit(mode="d", value="", label="Output folder",
                            tooltip="Where <name>_labels.tif of each image is written; empty: "
                                    f"a folder {DEFAULT_OUT!r} beside the images")
        self.redo = CheckBox(value=False, text="Redo files already done")
        self.run = PushButton(text="Predict folder")
        self.stop_button = PushButton(text="Stop")
        self.progress = ProgressBar(value=0, min=0, max=1, visible=False)
        self.status = status_label("")
        self.extend([form(self.out, self.redo), row(self.run, self.stop_button),
                     self.progress, self.status])
        self.stop_button.enabled = False
        # One line whatever its length: a long file name neither widens the dock nor adds
        # a line (the whole text is in the tooltip).
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored,
                                         QSizePolicy.Policy.Preferred)
        self.out.line_edit.native.setPlaceholderText(f"{DEFAULT_OUT}/ beside the images")
        self.results: list[FileResult] = []
        self.worker = None
        self._stop = threading.Event()
        self.run.changed.connect(self.start)
        self.stop_button.changed.connect(self._stop.set)

    def stop(self) -> None:
        """Stop after the current file (the panel closing calls it)."""
        self._stop.set()

    def output_folder(self, images: Path) -> Path:
        chosen = str(self.out.value or "").strip()
        return Path(chosen) if chosen not in ("", ".") else images / DEFAULT_OUT

    def start(self):
        """Plan and start the run; return the worker (``None`` when nothing starts)."""
        from napari_unet.core.errors import InputError
        from napari_unet.core.predict.files import check_folder, find_images, is_done, plan_jobs

        if self.worker is not None:
            return None
        folder = image_folder(self.session.image)
        if folder is None:
            show_warning("Predict folder needs an image opened from a file: its folder is the "
                         "one predicted (Data step).")
            return None
        bundle, model_time = self._model()
        if bundle is None:
            show_warning("There is no model yet: train one or load one (Train step).")
            return None
        try:
            out = check_folder(self.output_folder(folder), "the output folder")
            jobs = plan_jobs(find_images(folder), out)
        except InputError as exc:
            show_error(f"Cannot predict the folder: {exc}")
            return None
        todo = [job for job in jobs if self.redo.value or not is_done(job, model_time)]
        skipped = len(jobs) - len(todo)
        self.results = []
        if not todo:
            self._say(f"All {len(jobs)} images of {folder.name} are done already; tick Redo "
                      "to predict them again.")
            return None
        self._stop.clear()
        worker = create_worker(_run, todo, bundle, self._options(), self._settings(),
                               self._stop, _start_thread=False)
        worker.yielded.connect(self._on_file)
        worker.errored.connect(lambda exc: show_error(f"Predicting the folder failed: {exc}"))
        worker.finished.connect(lambda: self._on_finished(len(todo), skipped, out))
        self.worker = worker
        self.run.enabled, self.stop_button.enabled = False, True
        self.progress.visible, self.progress.max, self.progress.value = True, len(todo), 0
        self._say(f"Predicting {len(todo)} images of {folder.name}…"
                  + (f" ({skipped} done already)" if skipped else ""))
        worker.start()
        return worker

    def _on_file(self, result: FileResult) -> None:
        self.results.append(result)
        self.progress.value = len(self.results)
        self._say(result.line())
        if result.failed:
            show_warning(result.line())

    def _say(self, text: str) -> None:
        self.status.value = text
        self.status.native.setToolTip(text)

    def _on_finished(self, planned: int, skipped: int, out: Path) -> None:
        self.worker = None
        self.run.enabled, self.stop_button.enabled = True, False
        self.progress.visible = False
        failed = sum(r.failed for r in self.results)
        done = len(self.results) - failed
        stopped = planned - len(self.results)
        summary = (f"{done} predicted, {skipped} skipped, {failed} failed"
                   + (f", {stopped} not started (stopped)" if stopped else ""))
        self._say(f"{summary}; outputs in {out}")
        show_info(f"{summary}; outputs in {out}")
