"""Objects to review: after *Predict* with objects, the least certain ones, a click away.

A part of the Correct step. When the instances layer of the chosen image changes (a
prediction with *Split into objects*), a worker computes the class probabilities of the
predicted slices with the current model (or takes those *Predict* kept, when the same
model made them) and ranks the objects by their confidence
(:mod:`napari_unet.core.predict.confidence`); the list shows the least certain first.
Clicking a row moves the view to the object's slice, centres and zooms on it and selects
it in the instances layer. Split and merge (:mod:`.object_tools`) sit below the list.
"""

from __future__ import annotations

import threading

import napari
import numpy as np
from magicgui.widgets import Container, Label, PushButton
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import QListWidget

from napari_unet.core.errors import NapariUnetError
from napari_unet.core.predict.confidence import DEFAULT_CONFIDENCE, ObjectToReview

from ._lifetime import CloseWatcher
from .axes import z_axis
from .channel_choice import image_input, is_lazy_input, mismatch
from .combos import row, status_label
from .jobs import PredictRequest, bundle_with_weights
from .layers import image_shape
from .object_tools import ObjectTools, instances_layer, instances_name
from .state import Session, prediction_source, session_for
from .training import controller_for, error_message

#: How many objects the list shows.
REVIEW_COUNT = 10
#: The object fills about this fraction of the canvas' smaller side when shown.
VIEW_FRACTION = 0.2
#: ... and never less wide than this many pixels, so its neighbours show too.
MIN_EXTENT = 30


def review_job(request: PredictRequest | None, instances: np.ndarray, slices: list[int] | None,
               count: int, done: threading.Event, should_stop=None,
               how: str = DEFAULT_CONFIDENCE, probabilities=None,
               threshold: float | None = None, volume: bool = False) -> list[ObjectToReview]:
    """In the worker: the ``count`` least certain objects of ``instances`` (a 2D image,
    a stack with ids per slice, or with ``volume`` a volume's 3D objects, each listed
    once), from ``probabilities`` when given (those Predict kept: (C, Y, X), or per
    slice), else from those ``request`` predicts; ``should_stop()`` is asked before each
    slice; ``done`` is set at the end."""
    from napari_unet.core.predict.confidence import (
        objects_to_review,
        stack_to_review,
        volume_to_review,
    )

    from .jobs import predict_job

    try:
        if probabilities is None:
            probabilities = predict_job(request, should_stop=should_stop).probabilities
        if should_stop is not None and should_stop():
            return []
    finally:
        done.set()
    if threshold is None:
        threshold = request.foreground_threshold
    if slices is None:
        return objects_to_review(instances, probabilities, count=count, how=how,
                                 threshold=threshold)
    rank = volume_to_review if volume else stack_to_review
    return rank(instances, probabilities, slices, count=count, how=how, threshold=threshold)


def describe(item: ObjectToReview) -> str:
    """One row of the list."""
    where, unit = "", "px"
    if item.z is not None:
        where = f"slice {item.z} · "
    elif len(item.box) == 3:  # a volume's 3D object
        (z0, z1), unit = item.box[0], "voxels"
        where = f"slices {z0}-{z1 - 1} · " if z1 - z0 > 1 else f"slice {z0} · "
    return f"{where}object {item.id} · sure {item.confidence:.2f} · {item.size} {unit}"


class ReviewPanel(Container):
    """The least certain objects, and the split and merge tools."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        title = Label(value="<b>Objects to review</b>, least certain first")
        self.objects = QListWidget()
        self.objects.setFixedHeight(118)  # about six rows: the dock stays compact
        self.objects.setToolTip("After Predict with 'Split into objects': the objects the "
                                "model is least sure of. Click one to go to it.")
        self.relist = PushButton(text="List again")
        self.status = status_label("")
        self.tools = ObjectTools(viewer, self.session, edited=self._edited)
        self.extend([title, row(self.relist), self.status, self.tools])
        self.native.layout().insertWidget(1, self.objects)  # under the title
        self.items: list[ObjectToReview] = []
        self.worker = None
        self._watched = None
        self._cancel, self._done = threading.Event(), threading.Event()
        self._done.set()
        self._closed = False
        self._watcher = CloseWatcher(self.native, self._close)
        self.objects.currentRowChanged.connect(self.go_to)
        self.objects.itemClicked.connect(lambda _item: self.go_to(self.objects.currentRow()))
        self.relist.changed.connect(self.list_objects)
        viewer.layers.events.inserted.connect(self._watch)
        self.session.image_changed.connect(self._watch)
        self._watch()

    # Filling the list --------------------------------------------------------
    def _watch(self, *_args) -> None:
        """Follow the instances layer of the chosen image: a new prediction lists again."""
        image = self.session.image
        layer = None if image is None else instances_layer(self._viewer, image)
        if layer is None or layer == self._watched:
            return
        if self._watched is not None:
            self._watched.events.data.disconnect(self.list_objects)
        self._watched = layer
        layer.events.data.connect(self.list_objects)
        self.list_objects()

    def _model(self):
        controller = self.session.training
        if controller is not None and controller.running and controller.latest_weights:
            return bundle_with_weights(controller.template, controller.latest_weights)
        return self.session.bundle

    def list_objects(self, *_args):
        """Rank the objects of the instances layer in a worker; return it (or ``None``)."""
        image, bundle = self.session.image, self._model()
        if image is None or self.worker is not None or self._closed:
            return None
        layer = instances_layer(self._viewer, image)
        if layer is None:
            self.status.value = "Predict with 'Split into objects' to list objects."
            return None
        if bundle is None or mismatch(self.session, bundle) is not None:
            return None
        if is_lazy_input(self.session):
            show_warning("Objects to review are listed for images held in memory only.")
            return None
        shape = image_shape(image)
        marks = self.session.marks(image)
        slices = None if len(shape) == 2 else sorted(
            z for z in marks.predicted if np.asarray(layer.data[z]).any())
        if slices is not None and not slices:
            return None
        # The probabilities Predict kept, when this model made them for these slices.
        kept = marks.kept(prediction_source(self.session, bundle),
                          [0] if slices is None else slices)
        request = None
        if kept is None:
            try:
                data = image_input(self.session)
            except NapariUnetError as exc:
                show_error(f"Cannot list the objects: {exc}")
                return None
            request = PredictRequest(
                image=data, bundle=bundle, slices=slices,
                probabilities=True, device=controller_for(self.session).device,
                foreground_threshold=self.session.foreground_threshold,
                rescale=self.session.rescale, shape=shape)
        elif slices is None:
            kept = kept[0]
        instances = np.asarray(layer.data).copy()
        self._done = threading.Event()
        worker = create_worker(review_job, request, instances, slices, REVIEW_COUNT,
                               self._done, self._cancel.is_set, probabilities=kept,
                               threshold=self.session.foreground_threshold,
                               volume=self.tools.volume(image),
                               _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda items: self._show(image, items))
        worker.errored.connect(lambda exc: show_error(error_message(exc, "Ranking objects")))
        worker.finished.connect(self._finished)
        self.worker = worker
        self.status.value = "Ranking the objects…"
        worker.start()
        return worker

    def _finished(self) -> None:
        self.worker = None

    def _close(self) -> None:
        self._closed = True
        self._cancel.set()  # the predictor stops before its next slice
        self._done.wait(5.0)

    def _show(self, image, items: list[ObjectToReview]) -> None:
        if self._closed or image != self.session.image:
            return
        self.items = list(items)
        self.objects.blockSignals(True)
        self.objects.clear()
        self.objects.addItems([describe(item) for item in self.items])
        self.objects.blockSignals(False)
        self.status.value = (f"{len(self.items)} least certain object(s): click one to go "
                             "to it." if self.items else "No object to review.")

    def _edited(self, z: int | None, ids: tuple[int, ...]) -> None:
        """Drop the rows of objects a split, merge or delete changed (``z`` ``None``: a
        2D image, or a volume's 3D objects, on every slice)."""
        keep = [k for k, item in enumerate(self.items)
                if not (item.id in ids and (z is None or item.z == z))]
        if len(keep) == len(self.items):
            return
        self._show(self.session.image, [self.items[k] for k in keep])

    # Going to an object -----------------------------------------------------
    def go_to(self, index: int) -> None:
        """Show object ``index`` of the list: its slice, centred and zoomed, selected."""
        if not 0 <= index < len(self.items) or self.session.image is None:
            return
        item, image = self.items[index], self.session.image
        layer = instances_layer(self._viewer, image)
        if layer is None:
            return
        viewer = self._viewer
        axis = z_axis(image)
        z = item.z
        if z is None and len(item.box) == 3:  # a 3D object: its largest slice
            box = tuple(slice(a, b) for a, b in item.box)
            area = (np.asarray(layer.data[box]) == item.id).sum(axis=(1, 2))
            z = item.box[0][0] + int(np.argmax(area))
        point = item.centre if z is None else (z, *item.centre[-2:])
        if z is not None and axis is not None:
            viewer.dims.set_current_step(viewer.dims.ndim - image.ndim + axis, z)
        world = np.asarray(layer.data_to_world(point), float)
        extent = max(hi - lo for lo, hi in item.box[-2:])
        scale = float(np.max(np.abs(layer.scale[-2:])))
        side = min(viewer.canvas.size)
        viewer.camera.center = tuple(world[-2:])
        viewer.camera.zoom = VIEW_FRACTION * side / max(extent * scale, MIN_EXTENT * scale)
        layer.selected_label = item.id
        self.status.value = f"{describe(item)}: split, merge or paint it, then Accept."


__all__ = ["ReviewPanel", "instances_name"]
