"""Runs training in a napari thread worker and refreshes the prediction in view.

:class:`TrainingController` is the one place that starts, pauses, resumes and stops
training for a viewer. Layer data are copied on the GUI thread (:func:`build_request`);
the worker only sees arrays; results arrive through the worker's signals, which run on
the GUI thread, where layers are updated.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from psygnal import Signal

from napari_unet.core.errors import NapariUnetError, failure_message

from .axes import channel_axis
from .channel_choice import (
    chosen_count,
    image_input,
    is_lazy_input,
    mismatch,
    recorded_channels,
)
from .guidance_panel import guidance_for
from .jobs import (
    JobFailed,
    PredictRequest,
    TrainJob,
    TrainRequest,
    TrainUpdate,
    bundle_with_weights,
    predict_and_signal,
)
from .layers import (
    annotations_for,
    image_shape,
    is_lazy_layer,
    predictions_layer,
    write_predictions,
)

if TYPE_CHECKING:
    from napari.layers import Image, Labels

    from .state import Session

log = logging.getLogger(__name__)
#: Loss-weight of the pixels the user corrected on the predictions and accepted.
CORRECTED_WEIGHT = 3.0


def correction_weights(corrected: dict[int, np.ndarray], shape: tuple[int, ...],
                       higher: dict[int, np.ndarray] | None = None) -> np.ndarray | None:
    """Pixel weights: :data:`CORRECTED_WEIGHT` on the accepted corrections, 1 elsewhere,
    or the ``higher`` weights of a slice where they are more (the border weights of split
    and merged objects); ``None`` when nothing was corrected."""
    masks = {z: m for z, m in corrected.items() if m.any()}
    if not masks:
        return None
    weights = np.ones(shape, np.float32)
    for z, mask in masks.items():
        target = weights if len(shape) == 2 else weights[z]
        if target.shape == mask.shape:
            target[mask] = CORRECTED_WEIGHT
            more = (higher or {}).get(z)
            if more is not None and more.shape == mask.shape:
                np.maximum(target, np.where(mask, more, 1.0), out=target)
    return weights


def error_message(exc: BaseException, doing: str) -> str:
    """A sentence for a notification: the core's own message, or a short summary."""
    return failure_message(exc, doing) or f"{doing} failed: {type(exc).__name__}: {exc}"


def training_pairs(session: Session, every_image: bool) -> list[tuple[Image, Labels]]:
    """The (image, annotations) pairs to train on: the session's, or every open pair
    (of one channel, when one channel is chosen: the channels of other images are not)."""
    from napari.layers import Image

    pairs: list[tuple[Image, Labels]] = []
    if session.image is not None and session.annotations is not None:
        pairs.append((session.image, session.annotations))
    if every_image and chosen_count(session) == 1 and channel_axis(session.image) is None:
        for layer in session.viewer.layers:
            if (isinstance(layer, Image) and layer != session.image and not layer.rgb
                    and channel_axis(layer) is None):
                labels = annotations_for(session.viewer, layer)
                if labels is not None and labels != session.annotations:
                    pairs.append((layer, labels))
    return pairs


def build_request(session: Session, every_image: bool, **options) -> TrainRequest:
    """Copy the layers' data on the GUI thread into a :class:`TrainRequest`."""
    from napari_unet.core.errors import InputError

    from .volume import training_dims

    dims, voxel = training_dims(session)
    pairs = training_pairs(session, every_image and dims == 2)
    if not pairs:
        raise InputError(
            "choose an image and its annotations layer first (Data and Annotate steps)"
        )
    problem = mismatch(session, session.bundle)
    if problem is not None:
        raise InputError(f"{problem}, or start a new model (Train step)")
    images, annotations, weights = [], [], []
    for image, labels in pairs:
        if image_shape(image) != tuple(np.shape(labels.data)):
            raise InputError(
                f"the annotations {labels.name!r} have shape {np.shape(labels.data)} but the "
                f"image {image.name!r} has shape {image_shape(image)}; they must match"
            )
        # The chosen channels of the image (the same core functions as the command line);
        # for an image opened lazily its one chosen channel, still lazy.
        chosen = image == session.image
        lazy = (is_lazy_input(session) if chosen else is_lazy_layer(image)) or (
            is_lazy_layer(labels))
        data = image_input(session) if chosen else (
            image.data if lazy else np.asarray(image.data).copy())
        if lazy:
            # Read chunk by chunk by the training; the annotations copied as they are
            # stored (only their painted chunks), so painting on goes on meanwhile.
            from napari_unet.core.io.sparse import is_sparse, to_sparse

            images.append(data)
            annotations.append(to_sparse(labels.data) if is_sparse(labels.data)
                               else np.asarray(labels.data).copy())
            weights.append(None)
            continue
        images.append(data)
        annotations.append(np.asarray(labels.data).copy())
        marks = session.marks(image)
        weights.append(correction_weights(marks.corrected_pixels, image_shape(image),
                                          marks.correction_weights))
    if "options" in options:
        options["options"] = replace(options["options"], channels=recorded_channels(session))
    return TrainRequest(
        images=images, annotations=annotations, weights=weights, bundle=session.bundle,
        class_names=[c.name for c in session.classes],
        class_colors=[c.color for c in session.classes], dims=dims, voxel_size=voxel,
        **options,
    )


class TrainingController:
    """Starts and controls training for one viewer; panels listen to its signals."""

    started = Signal()
    progressed = Signal(object)  # core.train.trainer.Progress
    paused_changed = Signal(bool)
    finished = Signal(bool)  # True when a trained model was kept
    preview_updated = Signal(int)  # slice index (0 for a 2D image)

    def __init__(self, session: Session):
        self.session = session
        self.job: TrainJob | None = None
        self.worker = None
        self.preview_worker = None
        self.live_preview = True
        self.stop_requested_at: float | None = None
        self.template = None  # the model's bundle as the run began (config, classes)
        self.latest_weights: dict | None = None  # the last copy of the weights in training
        self._preview_done_event = threading.Event()
        self._preview_done_event.set()
        self._kept = False  # whether the run in progress returned a model

    @property
    def running(self) -> bool:
        return self.worker is not None

    @property
    def device(self) -> str:
        """The device of the training in progress (``auto`` when none runs)."""
        return self.job.request.options.device if self.job else "auto"

    @property
    def paused(self) -> bool:
        return self.job is not None and self.job.paused

    # ------------------------------------------------------------------ control
    def start(self, request: TrainRequest):
        """Start training in a worker thread and return the worker."""
        if self.running:
            raise RuntimeError("training is already running")
        self.job = TrainJob(request)
        self.stop_requested_at = None
        self.template = None
        self.latest_weights = None
        worker = create_worker(self.job.run, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_update)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        image = self.session.image
        if self.live_preview and image is not None and not image.rgb:
            # Made now rather than at the first preview: adding a layer takes a moment.
            predictions_layer(self.session.viewer, image, self.session.classes)
        self.session.busy_changed.emit(True)
        self.started.emit()
        worker.start()
        return worker

    def stop(self) -> None:
        if self.job is not None and not self.job.stopping:
            self.stop_requested_at = time.perf_counter()
            self.job.stop()

    def pause(self) -> None:
        if self.job is not None:
            self.job.pause()
            self.paused_changed.emit(True)

    def resume(self) -> None:
        if self.job is not None:
            self.job.resume()
            self.paused_changed.emit(False)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop training and wait for the worker thread (the widget or viewer closes)."""
        job = self.job
        if job is not None:
            self.live_preview = False
            job.stop()
            job.done.wait(timeout)
        self._preview_done_event.wait(timeout)

    # ------------------------------------------------------------- worker signals
    def _on_update(self, update: TrainUpdate) -> None:
        if update.template is not None:
            self.template = update.template
        if update.progress is not None:
            self.progressed.emit(update.progress)
        if update.weights is not None and self.template is not None:
            self.latest_weights = update.weights
            if self.live_preview:
                self.refresh_preview(bundle_with_weights(self.template, update.weights))

    def _on_returned(self, bundle) -> None:
        if bundle is not None:
            self._kept = True
            self.session.set_model(bundle, "trained here")

    def _on_error(self, exc: BaseException) -> None:
        exc = exc.error if isinstance(exc, JobFailed) else exc
        log.debug("training failed", exc_info=exc)
        show_error(error_message(exc, "Training"))

    def _on_finished(self) -> None:
        kept, self._kept = self._kept, False
        if self.stop_requested_at is not None and kept:
            waited = time.perf_counter() - self.stop_requested_at
            show_info(f"Training stopped after {waited:.1f} s; the weights are kept.")
        elif self.stop_requested_at is not None:
            show_info("Training stopped before its first iteration; the model is unchanged.")
        self.job = None
        self.worker = None
        self.session.busy_changed.emit(False)
        self.finished.emit(kept)

    # ---------------------------------------------------------------- preview
    def refresh_preview(self, bundle) -> None:
        """Predict the slice in view with ``bundle`` in a worker, unless one is running."""
        image = self.session.image
        if self.preview_worker is not None or image is None or image.rgb:
            return
        z = self.session.current_slice()
        try:
            if bundle.dims == 3:  # the slab around the slice in view, not the whole volume
                from .volume_jobs import preview_request

                request = preview_request(self.session, bundle, z, self.device)
            else:
                data = image_input(self.session, z)  # a lazy slice is read in the worker
        except NapariUnetError as exc:  # the channels changed under way: no preview
            log.debug("no preview: %s", exc)
            return
        shape = image_shape(image)
        if bundle.dims != 3:
            request = PredictRequest(image=data, bundle=bundle, device=self.device,
                                     foreground_threshold=self.session.foreground_threshold,
                                     rescale=self.session.rescale,
                                     shape=shape if z is None else shape[1:], uncertainty=True)
        self._preview_done_event = threading.Event()
        worker = create_worker(predict_and_signal, request, self._preview_done_event,
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda result: self._apply_preview(image, z, result))
        worker.errored.connect(lambda exc: log.debug("preview failed", exc_info=exc))
        worker.finished.connect(self._preview_done)
        self.preview_worker = worker
        worker.start()

    def _preview_done(self) -> None:
        self.preview_worker = None

    def _apply_preview(self, image: Image, z: int | None, result) -> None:
        viewer = self.session.viewer
        if not self.live_preview or image not in viewer.layers:
            return
        write_predictions(viewer, image, result.labels, self.session.classes, z)
        self.session.marks(image).record(result.labels, z)
        guidance_for(self.session).update(image, z, result.uncertainty)
        self.preview_updated.emit(z or 0)


def controller_for(session: Session) -> TrainingController:
    """The session's training controller, created on first use."""
    if session.training is None:
        session.training = TrainingController(session)
    return session.training
