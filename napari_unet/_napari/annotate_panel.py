"""Step 2, Annotate: the annotations layer, its classes, the brush, and live counts."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import Container, Label, PushButton, SpinBox
from napari.layers import Labels
from napari.utils.notifications import show_warning
from qtpy.QtCore import QTimer

from ._lifetime import CloseWatcher, Subscriptions
from .autosave import Autosaver, restore
from .class_list import ClassList
from .combos import form, layer_combo
from .guidance_panel import WhereNext
from .layers import (
    annotation_colormap,
    annotations_for,
    create_annotations,
    image_shape,
    is_lazy_layer,
    set_colormap,
    unusable_reason,
)
from .state import Session, session_for

HINT = (
    "Paint a few strokes: 1 = background,\n"
    "2 and up = what to find. Pixels left\n"
    "unpainted are ignored."
)


class AnnotatePanel(Container):
    """Create or pick the annotations of the chosen image and paint them."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.layer = layer_combo(viewer, Labels, "Annotations")
        self.create = PushButton(text="Create annotations layer")
        self.class_list = ClassList(self.session.classes)
        self.brush = SpinBox(value=10, min=1, max=200, label="Brush size")
        self.counts = Label(value="")
        hint = Label(value=HINT)
        self.where_next = WhereNext(viewer, self.session)
        self.extend([form(self.layer), self.create, hint, self.class_list, form(self.brush),
                     self.counts, self.where_next])
        self._bound: Labels | None = None
        self._timer = QTimer(self.native)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)
        self._timer.timeout.connect(self.update_counts)
        self.layer.changed.connect(self._on_layer)
        self.create.changed.connect(self.create_layer)
        self.brush.changed.connect(self._on_brush)
        self.class_list.edited.connect(self.session.set_classes)
        self.class_list.paint_requested.connect(self.paint_class)
        self._subs = Subscriptions()
        self._subs.connect(self.session.classes_changed, self._on_classes)
        self._subs.connect(self.session.image_changed, self._on_image)
        self._subs.connect(self.session.annotations_changed, self._on_session_annotations)
        self._subs.connect(self.session.dims_changed, self._on_dims)
        self._on_image(self.session.image)
        self.autosave = Autosaver(self.session, parent=self.native)
        self._watcher = CloseWatcher(self.native, self._release)

    # ------------------------------------------------------------------ actions
    def create_layer(self) -> Labels | None:
        """Create (or find) the annotations layer of the chosen image and pick it."""
        image = self.session.image
        if image is None:
            show_warning("Choose an image first (Data step).")
            return None
        problem = unusable_reason(image)
        if problem is not None:
            show_warning(f"Cannot annotate: {problem}.")
            return None
        new = annotations_for(self._viewer, image) is None
        layer = create_annotations(self._viewer, image, self.session.classes)
        self.layer.value = layer
        if new and restore(layer, image) is not None:
            self.autosave.dirty = False  # the autosave holds these annotations already
        self.paint_class(2)
        return layer

    def paint_class(self, value: int) -> None:
        """Select the annotations layer in paint mode with class ``value``."""
        layer = self.session.annotations
        if layer is None:
            return
        layer.selected_label = value
        layer.brush_size = self.brush.value
        self._viewer.layers.selection.active = layer
        layer.mode = "paint"

    def update_counts(self) -> None:
        """Annotated pixels per class and the annotated slices."""
        layer = self.session.annotations
        if layer is None:
            self.counts.value = "No annotations layer yet."
            return
        classes = self.session.classes
        if is_lazy_layer(layer):
            self.counts.value = _sparse_counts(layer.data, classes, self._is_volume())
            return
        data = np.asarray(layer.data)
        flat = data.ravel()
        negative = flat < 0 if np.issubdtype(flat.dtype, np.signedinteger) else None
        if negative is not None and negative.any():
            flat = flat[~negative]
        counts = np.bincount(flat, minlength=len(classes) + 1)
        volume = self._is_volume()
        unit = "voxels" if volume else "px"
        parts = [f"{c.name}: {counts[c.value]:,} {unit}" for c in classes]
        extra = counts[len(classes) + 1 :]
        if extra.any():
            parts.append(f"undefined classes: {int(extra.sum()):,} {unit}")
        if negative is not None and negative.any():
            parts.append(f"negative values (not usable): {int(negative.sum()):,} {unit}")
        text = "\n".join(" · ".join(parts[i : i + 2]) for i in range(0, len(parts), 2))
        if data.ndim == 3:
            painted = np.flatnonzero(data.reshape(data.shape[0], -1).any(axis=1))
            text += "\n" + slices_text(painted, data.shape[0], volume)
        self.counts.value = text

    # ----------------------------------------------------------------- handlers
    def _is_volume(self) -> bool:
        from .volume import dims_in_effect

        return dims_in_effect(self.session, self.session.image)[0] == "3d"

    def _on_dims(self, image) -> None:
        if image == self.session.image:
            self.update_counts()

    def _on_image(self, image) -> None:
        if image is not None:
            existing = annotations_for(self._viewer, image)
            if existing is not None:
                self.layer.value = existing
        self.create.enabled = image is not None
        self._on_layer(self.layer.value)

    def _on_layer(self, layer: Labels | None) -> None:
        image = self.session.image
        if layer is not None and image is not None and tuple(np.shape(layer.data)) != image_shape(
            image
        ):
            show_warning(
                f"{layer.name!r} has shape {np.shape(layer.data)} but {image.name!r} has shape "
                f"{image_shape(image)}: create an annotations layer for this image."
            )
            layer = None
        self._bind(layer)
        self.session.set_annotations(layer)
        self.update_counts()

    def _on_session_annotations(self, layer: Labels | None) -> None:
        if layer != self.layer.value and (layer is None or layer in self._viewer.layers):
            self.layer.value = layer

    def _bind(self, layer: Labels | None) -> None:
        if self._bound is not None:
            for emitter in (self._bound.events.paint, self._bound.events.data):
                emitter.disconnect(self._schedule)
        self._bound = layer
        if layer is not None:
            layer.events.paint.connect(self._schedule)
            layer.events.data.connect(self._schedule)
            set_colormap(layer, annotation_colormap(self.session.classes))

    def _release(self) -> None:
        self.autosave.close()
        self._subs.release()
        self._timer.stop()
        self._bind(None)

    def _schedule(self, event=None) -> None:
        if not self._timer.isActive():
            self._timer.start()

    def _on_brush(self, size: int) -> None:
        if self.session.annotations is not None:
            self.session.annotations.brush_size = size

    def _on_classes(self) -> None:
        self.class_list.set_classes(self.session.classes)
        if self.session.annotations is not None:
            set_colormap(self.session.annotations, annotation_colormap(self.session.classes))
        self.update_counts()


def slices_text(painted, n: int, volume: bool = False) -> str:
    """``Annotated slices: 2 of 5 (0, 1)`` for a stack of 2D slices; for a volume
    ``Strokes on slices 12, 40, 77 (3 of 100)``."""
    painted = [int(z) for z in painted]
    listed = ", ".join(str(z) for z in painted[:12]) + (" …" if len(painted) > 12 else "")
    if volume:
        if not painted:
            return f"No strokes yet on any of the {n} slices"
        return f"Strokes on slice{'s' if len(painted) > 1 else ''} {listed} ({len(painted)} of {n})"
    return f"Annotated slices: {len(painted)} of {n}" + (f" ({listed})" if painted else "")


def _sparse_counts(data, classes, volume: bool = False) -> str:
    """The counts of :meth:`AnnotatePanel.update_counts` for annotations held chunk by
    chunk (zarr): only the stored chunks are read; other lazy labels are not counted."""
    from napari_unet.core.io.sparse import annotated_slices, chunk_region, is_sparse, stored_chunks

    if not is_sparse(data):
        return "Labels read lazily: pixels are counted once painted on a new layer."
    counts = np.zeros(len(classes) + 1, np.int64)
    for coords in stored_chunks(data):
        block = np.asarray(data[chunk_region(data, coords)])
        block = block[block >= 0] if np.issubdtype(block.dtype, np.signedinteger) else block
        c = np.bincount(block.ravel(), minlength=counts.size)
        counts += c[: counts.size]
    unit = "voxels" if volume else "px"
    text = " · ".join(f"{c.name}: {counts[c.value]:,} {unit}" for c in classes)
    if data.ndim == 3:
        text += "\n" + slices_text(annotated_slices(data), data.shape[0], volume)
    return text
