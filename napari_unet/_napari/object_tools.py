"""Split, merge and delete objects of the instances layer; each becomes annotation on
*Accept*.

*Split*: draw a line across an object on the ``"<image> cut"`` shapes layer (the button
makes it the active layer, in line mode); the object falls into its parts, each with its
own id. *Merge*: click two objects; they become one, the gap between them filled.
*Delete*: click a false object; it is removed and taught as background. The core
(:mod:`napari_unet.core.split_merge`) computes each on one slice of a stack (ids are per
slice), on a whole 2D image, or on the whole of a volume, whose objects are 3D: there a
click deletes or merges the objects through all their slices, and a line drawn in the
view (Z-Y-X or a rolled one) cuts the object with the plane through the line, across
the slices it spans. The predictions layer follows (the cut and the deleted object
become background, the gap foreground), and the annotations of the edit wait in the
session (``SliceMarks.pending``, per slice) until *Accept corrections* writes them: the
cut as background between the parts, the parts and the merged object as foreground
(interior and boundary for a model trained on instance masks), with the border weights
where objects touch; a deleted object as background.
"""

from __future__ import annotations

from collections.abc import Callable

import napari
import numpy as np
from magicgui.widgets import Container, PushButton
from napari.utils.notifications import show_info, show_warning

from napari_unet.core.errors import InputError

from .combos import row, status_label
from .layers import find_labels, image_shape, is_lazy_layer, keep_selection, predictions_name
from .state import Session

CUT_COLOR = "#00ffff"


def instances_name(image) -> str:
    return f"{image.name} instances"


def instances_layer(viewer, image):
    """The instances layer of ``image`` (made by *Predict* with objects), or ``None``."""
    return find_labels(viewer, instances_name(image), image_shape(image))


def line_mask(vertices: np.ndarray, shape: tuple[int, ...], axis: int = 0,
              ) -> tuple[int | None, np.ndarray]:
    """The pixels of a drawn line or path (its vertices in the layer's pixel coordinates)
    on the plane of an image of ``shape``: ``(slice, mask)``, slice ``None`` for 2D. For a
    3D ``shape`` the line lies on slice ``slice`` along ``axis`` (0: a Z slice; 1 or 2 in
    a rolled view) and ``mask`` is that plane's."""
    from skimage.draw import line

    vertices = np.asarray(vertices, float)
    z = None if len(shape) == 2 else int(np.clip(round(vertices[0, axis]), 0,
                                                 shape[axis] - 1))
    plane = [a for a in range(len(shape)) if len(shape) == 2 or a != axis]
    yx = np.round(vertices[:, plane]).astype(int)
    mask = np.zeros(tuple(shape[a] for a in plane), bool)
    for (y0, x0), (y1, x1) in zip(yx[:-1], yx[1:]):
        rr, cc = line(y0, x0, y1, x1)
        inside = (rr >= 0) & (rr < mask.shape[0]) & (cc >= 0) & (cc < mask.shape[1])
        mask[rr[inside], cc[inside]] = True
    return z, mask


class ObjectTools(Container):
    """The *Split*, *Merge* and *Delete* buttons of the Correct step."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session,
                 edited: Callable[[int | None, tuple[int, ...]], None] | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session
        self._edited = edited
        self.split = PushButton(text="Split: draw a line", tooltip=(
            "Draw a line across an object on the 'cut' layer: it falls into two objects, "
            "and the line is taught as background between them"))
        self.merge = PushButton(text="Merge: click two", tooltip=(
            "Click two objects on the canvas: they become one, and the gap between them is "
            "taught as foreground"))
        self.delete = PushButton(text="Delete: click", tooltip=(
            "Click a false object on the canvas: it is removed (in a volume, through all "
            "its slices) and taught as background"))
        for button in (self.split, self.merge, self.delete):
            button.native.setCheckable(True)
        self.status = status_label("")
        self.extend([row(self.split, self.merge, self.delete), self.status])
        self.split.native.toggled.connect(self._split_mode)
        self.merge.native.toggled.connect(self._merge_mode)
        self.delete.native.toggled.connect(self._delete_mode)
        self._picked: tuple[int | None, int] | None = None
        self._cut = None

    # The layers -------------------------------------------------------------
    def _layers(self):
        image = self.session.image
        if image is None:
            show_warning("Choose an image first (Data step).")
            return None, None, None
        instances = instances_layer(self._viewer, image)
        if instances is None:
            show_warning("There are no objects yet: Predict with 'Split into objects'.")
            return image, None, None
        return image, instances, find_labels(self._viewer, predictions_name(image),
                                             image_shape(image))

    def volume(self, image) -> bool:
        """Whether the objects of ``image`` are 3D (it runs as a volume): edits act on
        whole objects, through all their slices. An image opened lazily is predicted
        slice by slice, its ids per slice."""
        from .volume import dims_in_effect

        if len(image_shape(image)) != 3 or is_lazy_layer(image):
            return False
        instances = instances_layer(self._viewer, image)
        if instances is not None and is_lazy_layer(instances):
            return False
        return dims_in_effect(self.session, image)[0] == "3d"

    def _slice_axis(self, layer) -> int | None:
        """The layer's axis across the plane in view (``None``: the 3D view)."""
        dims = self._viewer.dims
        if dims.ndisplay != 2:
            return None
        hidden = [a - (dims.ndim - layer.ndim) for a in dims.not_displayed]
        hidden = [a for a in hidden if a >= 0]
        return hidden[-1] if hidden else None

    def cut_layer(self):
        """The shapes layer lines are drawn on (created with the instances' geometry)."""
        image, instances, _ = self._layers()
        if instances is None:
            return None
        name = f"{image.name} cut"
        if self._cut is not None and self._cut in self._viewer.layers:
            return self._cut
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        with keep_selection(self._viewer):
            self._cut = self._viewer.add_shapes(
                ndim=instances.ndim, name=name, scale=instances.scale,
                translate=instances.translate, edge_color=CUT_COLOR, edge_width=1.5)
        self._cut.events.data.connect(self._on_drawn)
        return self._cut

    # Split ------------------------------------------------------------------
    def _split_mode(self, on: bool) -> None:
        if not on:
            return
        self.merge.native.setChecked(False)
        self.delete.native.setChecked(False)
        cut = self.cut_layer()
        if cut is None:
            self.split.native.setChecked(False)
            return
        self._viewer.layers.selection.active = cut
        cut.mode = "add_line"
        self.status.value = "Draw a line across the object to split."

    def _on_drawn(self, event) -> None:
        if str(getattr(event, "action", "added")) not in ("added", "ActionType.ADDED"):
            return
        cut = self._cut
        lines = [np.asarray(d) for d in cut.data]
        if not lines:
            return
        for vertices in lines:
            self.split_along(vertices)
        cut.data = []  # drawn, used: the next line starts afresh

    def split_along(self, vertices: np.ndarray) -> bool:
        """Split the object the line through ``vertices`` (the instances layer's pixel
        coordinates) crosses most."""
        image, instances, predictions = self._layers()
        if instances is None:
            return False
        shape = image_shape(image)
        from napari_unet.core.split_merge import split_object

        extend = {}
        if self.volume(image):  # the plane through the line cuts the 3D object
            axis = self._slice_axis(instances)
            if axis is None:
                show_warning("Cannot split in the 3D view: switch to the 2D view and draw "
                             "the line on a slice.")
                return False
            k, plane_mask = line_mask(vertices, shape, axis)
            mask = np.zeros(shape, bool)
            index = [slice(None)] * 3
            index[axis] = k
            mask[tuple(index)] = plane_mask
            z, plane, extend = None, (Ellipsis,), {"axis": axis}
        else:
            z, mask = line_mask(vertices, shape)
            plane = (Ellipsis,) if z is None else (z,)
        current = np.asarray(instances.data[plane])
        try:
            edit = split_object(current, mask, **extend,
                                **self._teaching(predictions, plane, current, mask))
        except InputError as exc:
            show_warning(f"Cannot split: {exc}.")
            return False
        cut = (current > 0) & (edit.instances == 0)
        self._apply(image, instances, predictions, z, plane, edit, cut=cut)
        show_info(f"Split object {edit.ids[0]} into {len(edit.ids)}: objects "
                  + ", ".join(str(i) for i in edit.ids) + ". Accept to teach it.")
        return True

    # Merge ------------------------------------------------------------------
    def _merge_mode(self, on: bool) -> None:
        self._click_mode(self.merge, on, "Click the first object to merge.")

    def _delete_mode(self, on: bool) -> None:
        self._click_mode(self.delete, on, "Click a false object to delete it.")

    def _click_mode(self, button, on: bool, prompt: str) -> None:
        """Merge or Delete on: a click on the canvas picks an object."""
        callbacks = self._viewer.mouse_drag_callbacks
        self._picked = None
        if not on:
            if not (self.merge.native.isChecked() or self.delete.native.isChecked()) and (
                    self._on_click in callbacks):
                callbacks.remove(self._on_click)
            return
        for other in (self.split, self.merge, self.delete):
            if other is not button:
                other.native.setChecked(False)
        _, instances, _ = self._layers()
        if instances is None:
            button.native.setChecked(False)
            return
        self._viewer.layers.selection.active = instances
        instances.mode = "pan_zoom"  # a click picks, it does not paint
        if self._on_click not in callbacks:
            callbacks.append(self._on_click)
        self.status.value = prompt

    def _on_click(self, viewer, event) -> None:
        if event.type != "mouse_press" or getattr(event, "button", 1) != 1:
            return
        _, instances, _ = self._layers()
        if instances is None:
            return
        point = tuple(int(p) for p in np.round(instances.world_to_data(event.position)))
        if self.delete.native.isChecked():
            self.delete_at(point)
        elif self.merge.native.isChecked():
            self.pick(point)

    def pick(self, point: tuple[int, ...]) -> bool:
        """Pick the object at ``point`` (pixel coordinates of the instances layer); the
        second pick merges the two. Returns whether a merge happened."""
        found = self._object_at(point)
        if found is None:
            return False
        instances, value, z = found
        if value == 0:
            self.status.value = "That is background: click inside an object."
            return False
        if self._picked is None or self._picked[0] != z:
            self._picked = (z, value)
            instances.selected_label = value
            self.status.value = f"Object {value} chosen: click the object to merge it with."
            return False
        first = self._picked[1]
        self._picked = None
        if first == value:
            self.status.value = f"Object {value} again: click another object."
            self._picked = (z, value)
            return False
        return self.merge_pair(z, first, value)

    def merge_pair(self, z: int | None, a: int, b: int) -> bool:
        """Merge objects ``a`` and ``b`` of slice ``z`` (``None``: a 2D image or a
        volume, whose objects are 3D)."""
        image, instances, predictions = self._layers()
        if instances is None:
            return False
        from napari_unet.core.split_merge import merge_objects

        plane = (Ellipsis,) if z is None else (z,)
        current = np.asarray(instances.data[plane])
        both = (current == a) | (current == b)
        try:
            edit = merge_objects(current, a, b, **self._teaching(predictions, plane, current,
                                                                 both))
        except InputError as exc:
            show_warning(f"Cannot merge: {exc}.")
            self.status.value = "Click the first object to merge."
            return False
        self._apply(image, instances, predictions, z, plane, edit,
                    gap=(current == 0) & (edit.instances > 0))
        show_info(f"Merged objects {a} and {b} into object {edit.ids[0]}. Accept to teach it.")
        self.status.value = "Merged. Click the first object of the next pair."
        return True

    # Delete -----------------------------------------------------------------
    def delete_at(self, point: tuple[int, ...]) -> bool:
        """Delete the object at ``point`` (pixel coordinates of the instances layer): on
        its slice of a stack, through all its slices in a volume."""
        found = self._object_at(point)
        if found is None:
            return False
        instances, value, z = found
        if value == 0:
            self.status.value = "That is background: click inside the object to delete."
            return False
        image, _, predictions = self._layers()
        volume = z is None and len(image_shape(image)) == 3
        plane = (Ellipsis,) if z is None else (z,)
        from napari_unet.core.split_merge import delete_object

        current = np.asarray(instances.data[plane])
        edit = delete_object(current, value)
        self._apply(image, instances, predictions, z, plane, edit, cut=current == value)
        where = ""
        if volume:
            n = int(np.count_nonzero(edit.where.any(axis=(1, 2))))
            where = f" through {n} slice(s)"
        show_info(f"Deleted object {value}{where}. Accept to teach it as background.")
        self.status.value = f"Deleted object {value}{where}. Click the next false object."
        return True

    # Shared -----------------------------------------------------------------
    def _object_at(self, point: tuple[int, ...]):
        """``(instances layer, id, slice)`` at ``point`` (pixel coordinates; id 0:
        background; slice ``None`` for a 2D image or a volume's 3D objects), ``None``
        without instances or outside the image."""
        image, instances, _ = self._layers()
        if instances is None:
            return None
        shape = image_shape(image)
        if len(point) != len(shape) or any(p < 0 or p >= n for p, n in zip(point, shape)):
            return None
        z = None if len(shape) == 2 or self.volume(image) else point[0]
        return instances, int(np.asarray(instances.data)[point]), z

    def _teaching(self, predictions, plane, current: np.ndarray, where: np.ndarray) -> dict:
        """How the edit's objects are annotated: interior and boundary for a model of
        instance masks, else the class the prediction gave them."""
        bundle = self.session.bundle
        if bundle is not None and bundle.splits_instances:
            return {"boundary": True}
        classes = np.asarray(predictions.data[plane])[where & (current > 0)] if (
            predictions is not None) else np.zeros(0, int)
        classes = classes[classes > 0]
        top = int(np.bincount(classes).argmax()) if classes.size else 1
        return {"foreground": top + 1}

    def _apply(self, image, instances, predictions, z, plane, edit, *, cut=None,
               gap=None) -> None:
        """Show the edit in the instances and predictions layers; keep its annotations
        for *Accept*."""
        instances.data[plane] = edit.instances.astype(instances.data.dtype)
        if (edit.instances == edit.ids[0]).any():
            instances.selected_label = edit.ids[0]
        instances.refresh()
        if predictions is not None:
            p = np.asarray(predictions.data[plane]).copy()
            if cut is not None:
                p[cut] = 0
            if gap is not None:
                taught = edit.annotation[gap].astype(np.int64) - 1
                p[gap] = np.maximum(taught, 1).astype(p.dtype)
            predictions.data[plane] = p
            predictions.refresh()
        marks = self.session.marks(image)
        if z is None and edit.annotation.ndim == 3:  # a volume: the slices it teaches
            taught = np.nonzero(edit.where.any(axis=(1, 2)))[0]
            pieces = {int(k): (edit.annotation[k], edit.weights[k]) for k in taught}
        else:
            pieces = {0 if z is None else z: (edit.annotation, edit.weights)}
        for key, (annotation, weights) in pieces.items():
            previous = marks.pending.get(key)
            if previous is not None:
                where = annotation > 0
                annotation = np.where(where, annotation, previous[0])
                weights = np.where(where, weights, previous[1])
            marks.pending[key] = (annotation.copy(), weights.copy())
        if self._edited is not None:
            self._edited(z, edit.ids)
