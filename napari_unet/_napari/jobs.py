"""What runs in the worker threads: plain Python over arrays, never napari objects.

A :class:`TrainJob` builds the training data and the trainer in the worker thread (the
first run imports torch there, not in the GUI), then drains ``Trainer.fit()`` and
yields :class:`TrainUpdate` records; every few seconds one carries a copy of the
weights, taken between two iterations, for the live preview. :func:`predict_job` runs
the tiled predictor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .requests import PredictRequest, TrainRequest

if TYPE_CHECKING:
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.predict.result import Prediction
    from napari_unet.core.train.trainer import Progress

@dataclass(frozen=True)
class TrainUpdate:
    """One message from the training worker."""

    progress: Progress | None = None
    weights: dict | None = None  # a CPU copy of the state dict, for the preview
    template: ModelBundle | None = None  # sent once, first: config, classes, normalisation


class JobFailed(Exception):
    """Carries an error out of a generator worker: superqt takes a ``RuntimeError``
    raised there for a deleted worker and ends it without ``errored`` or ``finished``."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


class TrainJob:
    """One training run; :meth:`run` is the worker's generator, the rest is thread-safe."""

    def __init__(self, request: TrainRequest):
        self.request = request
        self._lock = threading.Lock()
        self._trainer = None
        self._stop = False
        self._paused = False
        self.done = threading.Event()  # set when the run has ended, whatever the way

    # Control from the GUI thread --------------------------------------------
    def stop(self) -> None:
        with self._lock:
            self._stop = True
            if self._trainer is not None:
                self._trainer.stop()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self._trainer is not None:
                self._trainer.pause()

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self._trainer is not None:
                self._trainer.resume()

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopping(self) -> bool:
        return self._stop

    # In the worker thread ---------------------------------------------------
    def _build(self):
        from napari_unet.core.train.plan import plan_training
        from napari_unet.core.train.trainer import Trainer

        req = self.request
        if req.dims == 3:
            from .volume_jobs import volume_trainer

            return volume_trainer(req)
        plan = plan_training(req.images, req.annotations, req.options, weights=req.weights,
                             resume=req.bundle, class_names=req.class_names,
                             class_colors=req.class_colors)
        return Trainer(plan.bundle, plan.data, plan.config)

    def run(self) -> Generator[TrainUpdate, None, ModelBundle | None]:
        """Train; yield progress (and, every few seconds, weights); return the bundle."""
        try:
            if self._stop:
                return None
            trainer = self._build()
            with self._lock:
                self._trainer = trainer
                if self._stop:
                    trainer.stop()
                if self._paused:
                    trainer.pause()
            yield TrainUpdate(template=trainer.bundle())
            last = time.perf_counter()
            for progress in trainer.fit():
                weights = None
                now = time.perf_counter()
                if now - last >= self.request.snapshot_every:
                    weights = {k: v.detach().to("cpu", copy=True)
                               for k, v in trainer.model.state_dict().items()}
                    last = now
                yield TrainUpdate(progress=progress, weights=weights)
            # Stopped before the first iteration: nothing learnt, the model stays as it was.
            return trainer.bundle() if trainer.run_iteration else None
        except RuntimeError as exc:  # out of memory, a failing GPU, a diverged loss
            raise JobFailed(exc) from exc
        finally:
            self.done.set()


def predict_job(request: PredictRequest, progress: Callable[[int, int], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> Prediction:
    """Predict in the worker thread (imports torch on first use)."""
    from napari_unet.core.predict.tiles import Predictor

    if request.bundle.dims == 3:
        from .volume_jobs import predict_volume

        return predict_volume(request, progress)

    predictor = Predictor(request.bundle, device=request.device,
                          foreground_threshold=request.foreground_threshold,
                          rescale=request.rescale)
    options = dict(slices=request.slices, progress=progress, should_stop=should_stop,
                   uncertainty=request.uncertainty)
    if request.stitch and request.instances:  # 3D objects of the slices' predictions
        from napari_unet.core.predict.volume_instances import predict_stitched

        result = predict_stitched(predictor, request.image, request.voxel_size,
                                  probabilities=request.probabilities,
                                  min_size=request.min_size, **options)
    else:
        result = predictor.predict(request.image, probabilities=request.probabilities,
                                   instances=request.instances, min_size=request.min_size,
                                   **options)
    return result if request.shape is None else result.shaped(request.shape)


def predict_and_signal(request: PredictRequest, done: threading.Event, **kwargs) -> Prediction:
    """:func:`predict_job`, then set ``done`` (however it ends) so a closing widget can
    wait for the thread."""
    try:
        return predict_job(request, **kwargs)
    finally:
        done.set()


def predict_slices_job(request: PredictRequest, slices: list[int], done: threading.Event,
                       should_stop: Callable[[], bool] | None = None,
                       ) -> Generator[tuple[int, np.ndarray, np.ndarray | None], None, int]:
    """Predict the listed slices of a lazily opened image one at a time in the worker
    thread (reading only each slice's chunks); yield ``(z, labels, instances or None)``
    after each, for the GUI thread to write into its layers; ``should_stop()`` is asked
    before each slice; set ``done`` at the end."""
    try:
        from napari_unet.core.errors import InputError
        from napari_unet.core.predict.tiles import Predictor

        if request.bundle.dims == 3:
            raise InputError("a 3D model does not predict an image opened lazily (larger "
                             "than memory) in the plugin yet: use a 2D model for it")
        predictor = Predictor(request.bundle, device=request.device,
                              foreground_threshold=request.foreground_threshold,
                              rescale=request.rescale)
        image = request.image
        planar = len(image.shape) == 2
        for z in slices:
            if should_stop is not None and should_stop():
                break
            plane = np.asarray(image if planar else image[z])
            result = predictor.predict(plane, instances=request.instances,
                                       min_size=request.min_size)
            yield z, result.labels, result.instances
        return len(slices)
    except RuntimeError as exc:  # out of memory, a failing GPU
        raise JobFailed(exc) from exc
    finally:
        done.set()


def bundle_with_weights(template: ModelBundle, weights: dict) -> ModelBundle:
    """The template's model with other weights (for predicting while training)."""
    return replace(template, state_dict=weights, optimizer_state=None)
