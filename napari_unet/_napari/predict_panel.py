"""Step 4, Predict: the slice in view or the whole stack, into one predictions layer."""

from __future__ import annotations

import threading
from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    RadioButtons,
    SpinBox,
)
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QObject, Signal

from napari_unet.core.config import MIN_OBJECT_SIZE
from napari_unet.core.decision import SEED_PROBABILITY, VOLUME_INTERIOR_PROBABILITY
from napari_unet.core.errors import NapariUnetError
from napari_unet.core.labels import labels_dtype
from napari_unet.core.predict.plan import PredictOptions, Route, plan_prediction
from napari_unet.core.scale import TOLERANCE, factor_range

from ._lifetime import CloseWatcher
from .channel_choice import image_input, is_lazy_input, mismatch
from .combos import form, row, status_label
from .folder_predict import FolderPrediction
from .guidance_panel import UncertaintyToggle, guidance_for
from .jobs import (
    JobFailed,
    PredictRequest,
    bundle_with_weights,
    predict_and_signal,
    predict_slices_job,
)
from .layers import (
    PREDICTION_CONTOUR,
    empty_labels,
    find_labels,
    image_shape,
    is_lazy_layer,
    keep_selection,
    prediction_colormap,
    predictions_layer,
    set_colormap,
    unusable_reason,
    write_extra_layer,
    write_predictions,
)
from .predict_save import default_labels_path, save_predictions
from .state import Session, prediction_source, session_for
from .training import controller_for, error_message
from .volume_jobs import volume_request

#: The choices of *Image size*: (text, the predictor's ``rescale``).
IMAGE_SIZE_CHOICES = [("Auto", "auto"), ("Full size", "off"), ("Half", 0.5), ("Third", 1 / 3),
                      ("Quarter", 0.25), ("Twice", 2.0)]


def resized_text(resized: dict[int, float], rescale) -> str:
    """What the status line adds when slices were predicted shrunk or enlarged ('' if
    none)."""
    if not resized:
        return ""
    by = factor_range(resized.values(), percent=True)
    verb = "enlarged" if min(resized.values()) > 1 else "shrunk"
    which, its = (verb.capitalize(), "its") if len(resized) == 1 else (
        f"{len(resized)} slices {verb}", "their")
    why = f": {its} objects look larger than the model's" if rescale == "auto" else ""
    return f" {which} to {by} of {its} size{why}."


class _Relay(QObject):
    """Carries ``(done, total)`` from the worker thread to the GUI thread."""

    progressed = Signal(int, int)


class PredictPanel(Container):
    """Predict with the current model; results replace the predictions in place."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.scope = RadioButtons(choices=[("Slice in view", "slice"), ("Whole stack", "stack")],
                                  value="slice", label="Predict", orientation="horizontal")
        self.probabilities = CheckBox(value=False, text="Probability layer")
        self.instances = CheckBox(
            value=False, text="Split into objects (instances)",
            tooltip="One label per object. A model trained on instance masks grows its objects "
                    "from the pixels it is sure are interior (p(interior) at least "
                    f"{SEED_PROBABILITY:g}), so touching objects come apart and a faint blob "
                    "without such a pixel is no object; other models split each class's "
                    "regions at their necks, so touching nuclei come apart too. In a "
                    "volume, an instance model's objects grow from the cores of its "
                    f"interior (p(interior) at least {VOLUME_INTERIOR_PROBABILITY:g}).")
        self.min_size = SpinBox(value=MIN_OBJECT_SIZE, min=1, max=10**6,
                                label="Smallest object (px)")
        self.threshold = FloatSpinBox(
            value=self.session.foreground_threshold, min=0.05, max=0.95, step=0.05,
            label="Foreground threshold",
            tooltip="A pixel is foreground when its foreground probability, 1 - p(background), "
                    "is at least this, whatever the number of classes; it then takes its most "
                    "likely foreground class. 0.5: foreground when at least as likely as "
                    "background. Raise it when objects come out too large, lower it when they "
                    "come out too small. The live preview during training uses it too.")
        self.rescale = ComboBox(
            choices=IMAGE_SIZE_CHOICES, value=self.session.rescale, label="Image size",
            tooltip="A model finds objects of about the size it was trained on. Auto shrinks "
                    f"a slice whose objects look more than {TOLERANCE:g} times as large "
                    "across as those of the training images until they look that large, and "
                    "gives the labels at the slice's size; Full size never resizes; the "
                    "others shrink every slice by that much. The live preview during "
                    "training uses it too.")
        self.uncertainty = UncertaintyToggle(viewer, self.session)
        self.run = PushButton(text="Predict")
        self.save = PushButton(text="Save labels…")
        self.progress = ProgressBar(value=0, min=0, max=1)
        self.status = status_label("")
        self.folder = FolderPrediction(self.session, self._folder_settings,
                                       self._folder_options, self._folder_model)
        self.extend([form(self.scope, self.threshold, self.rescale, self.probabilities,
                          self.instances, self.min_size),
                     self.uncertainty, row(self.run, self.save), self.progress, self.status,
                     Label(value="<b>Every image of its folder</b>"), self.folder])
        self.worker = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._relay = _Relay()
        self._relay.progressed.connect(self._on_progress)
        self.threshold.changed.connect(self._set_threshold)
        self.rescale.changed.connect(self._set_rescale)
        self.run.changed.connect(self.predict)
        self.save.changed.connect(self._ask_save)
        self.instances.changed.connect(lambda on: setattr(self.min_size, "visible", on))
        self.min_size.visible = False
        self._closed = False
        self._watcher = CloseWatcher(self.native, self._close)

    def predict(self):
        """Start predicting in a worker; return it (``None`` when there is nothing to do)."""
        image, bundle = self.session.image, self._model()
        if self.worker is not None:
            return None
        if image is None:
            show_warning("Choose an image first (Data step).")
            return None
        if bundle is None:
            show_warning("There is no model yet: train one or load one (Train step).")
            return None
        z = self.session.current_slice() if self.scope.value == "slice" else None
        shape = image_shape(image)
        problem = unusable_reason(image)
        if problem is not None:
            show_error(f"Cannot predict: {problem}.")
            return None
        problem = mismatch(self.session, bundle)
        if problem is not None:
            show_error(f"Cannot predict: {problem}.")
            return None
        lazy = is_lazy_input(self.session)
        try:  # the chosen channels, through the same core functions as the command line
            run = plan_prediction(
                bundle, [image_input(self.session, None if lazy else z)],
                options=PredictOptions(
                    instances=self.instances.value, min_size=self.min_size.value,
                    probabilities=self.probabilities.value, rescale=self.session.rescale,
                    foreground_threshold=self.session.foreground_threshold),
                device=controller_for(self.session).device)
        except NapariUnetError as exc:
            show_error(f"Cannot predict: {exc}")
            return None
        if run.route is Route.SLICES:
            return self._predict_lazy(image, run, z)
        # With objects, the probabilities are kept for the list of objects to review.
        request = PredictRequest(
            image=run.image, bundle=bundle,
            probabilities=run.keeps_probabilities or run.options.instances,
            instances=run.options.instances, min_size=run.options.min_size,
            device=run.device, foreground_threshold=run.options.foreground_threshold,
            rescale=run.options.rescale, shape=shape if z is None else shape[1:],
            uncertainty=True,
        )
        try:  # a volume: a 3D model at the image's voxel size, or 2D objects joined in z
            request = volume_request(self.session, request, z)
        except NapariUnetError as exc:
            show_error(f"Cannot predict: {exc}")
            return None
        self._cancel.clear()
        self._done = threading.Event()
        worker = create_worker(predict_and_signal, request, self._done,
                               progress=self._relay.progressed.emit,
                               should_stop=self._cancel.is_set, _start_thread=False,
                               _ignore_errors=True)
        source, layer = prediction_source(self.session, bundle), run.keeps_probabilities
        worker.returned.connect(lambda result: self._apply(image, z, result, source, layer))
        worker.errored.connect(lambda exc: show_error(error_message(exc, "Prediction")))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.run.enabled = False
        self.progress.max = 1 if z is not None or len(shape) == 2 else shape[0]
        self.progress.value = 0
        self.status.value = "Predicting…"
        if bundle.dims == 3 and z is None:  # said before a volume grows by the zoom
            from napari_unet.core.predict.volume import zoom_text

            zoom = zoom_text(bundle, shape, request.voxel_size)
            if zoom is not None:
                self.status.value = f"Predicting, {zoom}…"
                show_info(f"Predicting {image.name!r}: {zoom}, so it takes longer.")
        worker.start()
        return worker

    def _predict_lazy(self, image, run, z: int | None):
        """Predict an image opened lazily (``run.image``: its chosen channel, still lazy) slice
        by slice in a worker: each slice is read there (only its chunks) and its labels
        are written here into zarr-backed layers, with napari's progress bar; the image is
        never loaded whole."""
        from napari.utils import progress

        shape = image_shape(image)
        slices = [z] if z is not None else list(range(1 if len(shape) == 2 else shape[0]))
        if run.probabilities_dropped:
            show_warning("Probabilities are not shown for an image opened lazily (too large "
                         "for memory); predicting the labels only.")
        bundle = run.bundle
        request = PredictRequest(
            image=run.image, bundle=bundle, instances=run.options.instances,
            min_size=run.options.min_size, device=run.device,
            foreground_threshold=run.options.foreground_threshold,
            rescale=run.options.rescale,
        )
        classes = self.session.classes
        target = predictions_layer(self._viewer, image, classes,
                                   labels_dtype(bundle.n_classes - 1))
        set_colormap(target, prediction_colormap(classes))
        objects = self._lazy_instances_layer(image) if run.options.instances else None
        self._cancel.clear()
        self._done = threading.Event()
        bar = progress(total=len(slices), desc=f"Predicting {image.name}")
        worker = create_worker(predict_slices_job, request, slices, self._done,
                               should_stop=self._cancel.is_set, _start_thread=False,
                               _ignore_errors=True)
        written = []

        def write(item) -> None:
            k, labels, instances = item
            if self._closed or image not in self._viewer.layers:
                return
            index = (Ellipsis,) if len(shape) == 2 else (k,)
            if target in self._viewer.layers:
                target.data[index] = labels
                target.refresh()
            if objects is not None and instances is not None and objects in self._viewer.layers:
                objects.data[index] = instances
                objects.refresh()
            if z is not None:
                self.session.marks(image).record(labels, z)
            written.append(k)
            bar.update(1)
            self._on_progress(len(written), len(slices))

        def finished() -> None:
            bar.close()
            if not self._closed and written:
                where = f"slice {z}" if z is not None else f"{len(written)} slices"
                self.status.value = f"Predicted {where} of {image.name!r}, read lazily."
            self._on_finished()

        worker.yielded.connect(write)
        worker.errored.connect(lambda exc: show_error(error_message(
            exc.error if isinstance(exc, JobFailed) else exc, "Prediction")))
        worker.finished.connect(finished)
        self.worker = worker
        self.run.enabled = False
        self.progress.max = len(slices)
        self.progress.value = 0
        self.status.value = "Predicting slice by slice…"
        worker.start()
        return worker

    def _lazy_instances_layer(self, image):
        """The zarr-backed instances layer of a lazily opened image, created if needed."""
        name = f"{image.name} instances"
        shape = image_shape(image)
        layer = find_labels(self._viewer, name, shape)
        dtype = labels_dtype(None, instances=True)
        if layer is not None and is_lazy_layer(layer) and layer.data.dtype == dtype:
            return layer
        with keep_selection(self._viewer):
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
            layer = self._viewer.add_labels(
                empty_labels(image, shape, dtype), name=name,
                scale=image.scale[-len(shape):], translate=image.translate[-len(shape):],
                opacity=0.9)
            layer.contour = PREDICTION_CONTOUR
        return layer

    def _set_threshold(self, value: float) -> None:
        self.session.foreground_threshold = float(value)

    def _set_rescale(self, value) -> None:
        self.session.rescale = value

    def save_labels(self, path: str | Path) -> bool:
        """Save the predictions of the chosen image as a compressed TIFF: one label per
        object with *Split into objects*, else one per class."""
        return save_predictions(self._viewer, self.session.image, path,
                                self.instances.value, self.min_size.value)

    def default_save_path(self) -> Path:
        """``<image>_labels.tif`` beside the image's file (or in the current folder)."""
        return default_labels_path(self.session.image)

    def _folder_settings(self):
        from napari_unet.core.predict.files import Settings

        return Settings(instances=self.instances.value, min_size=self.min_size.value)

    def _folder_options(self) -> dict:
        return {"device": controller_for(self.session).device,
                "foreground_threshold": self.session.foreground_threshold,
                "rescale": self.session.rescale}

    def _folder_model(self) -> tuple:
        """The model and when it last changed (now, for weights of a running training)."""
        import time

        controller = self.session.training
        if controller is not None and controller.running:
            return self._model(), time.time_ns()
        return self.session.bundle, self.session.model_time_ns

    def _model(self):
        """The current model, or a copy of the weights of the training in progress."""
        controller = self.session.training
        if controller is not None and controller.running and controller.latest_weights:
            return bundle_with_weights(controller.template, controller.latest_weights)
        return self.session.bundle

    def _close(self) -> None:
        self._closed = True
        self.folder.stop()
        self._cancel.set()  # the predictor stops before its next slice
        self._done.wait(5.0)

    def _apply(self, image, z: int | None, result, source: tuple | None = None,
               show_probabilities: bool = True) -> None:
        """Write a prediction of ``image`` (slice ``z`` or all of it) into its layers;
        keep its probabilities, made by ``source``, for the objects to review (before the
        instances layer changes: that lists them)."""
        if self._closed or image not in self._viewer.layers:
            return
        classes = self.session.classes
        write_predictions(self._viewer, image, result.labels, classes, z)
        marks = self.session.marks(image)
        marks.record(result.labels, z)
        guidance_for(self.session).update(image, z, result.uncertainty)
        if result.probabilities is not None and result.instances is not None and source:
            marks.keep(source, result.probabilities, z)
        if result.probabilities is not None and show_probabilities:
            fg = 1.0 - result.probabilities[..., 0, :, :]
            if z is not None:
                full = np.zeros(image_shape(image), np.float32)
                full[z] = fg
                fg = full
            write_extra_layer(self._viewer, image, "probability", fg, "image",
                              colormap="magma", blending="additive", contrast_limits=(0, 1),
                              visible=True)
        if result.instances is not None:
            inst = result.instances
            if z is not None:
                full = np.zeros(image_shape(image), np.int32)
                full[z] = inst
                inst = full
            write_extra_layer(self._viewer, image, "instances", inst, "labels", opacity=0.9,
                              contour=1)
        where = f"slice {z}" if z is not None else "the whole image"
        self.status.value = f"Predicted {where} of {image.name!r}." + resized_text(
            result.resized(), self.session.rescale)

    def _on_progress(self, done: int, total: int) -> None:
        if self._closed:
            return
        self.progress.max = total
        self.progress.value = done

    def _on_finished(self) -> None:
        self.worker = None
        if not self._closed:
            self.run.enabled = True

    def _ask_save(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Save the labels",
                                              str(self.default_save_path()),
                                              "TIFF (*.tif *.tiff)")
        if path:
            self.save_labels(path)
