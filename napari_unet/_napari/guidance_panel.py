"""Guidance in the plugin: the uncertainty layer and the *Where next?* button.

Every prediction of an image held in memory (the live preview during training and
*Predict*) brings its uncertainty (:mod:`napari_unet.core.predict.uncertainty`);
:class:`Guidance` keeps the latest of each image, shows it as an ``"<image> uncertainty"``
layer on request (*Show uncertainty*, in the Predict step) and ranks the regions of
*Where next?* (in the Annotate step) with
:func:`~napari_unet.core.predict.guidance.next_regions`: windows of the model's patch
size, most uncertain unannotated pixels first, without those annotated or corrected since
the last training started. The region shown is marked by a rectangle in a
``"Where next?"`` Shapes layer.
"""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, PushButton
from napari.utils.notifications import show_info, show_warning

from .combos import status_label
from .layers import image_shape, keep_selection, predictions_name, write_extra_layer
from .state import Session, session_for

#: The name of the Shapes layer that marks the region of *Where next?*.
MARK_LAYER = "Where next?"
MARK_COLOR, MARK_WIDTH = "#ffd700", 3
#: How the uncertainty layer looks: over the image without hiding it.
UNCERTAINTY_STYLE = dict(colormap="magma", blending="additive", opacity=0.5,
                         contrast_limits=(0.0, 1.0))

def uncertainty_name(image) -> str:
    return f"{image.name} uncertainty"


class Guidance:
    """The uncertainty of each image's latest prediction, the annotations as they were
    when training last started, and the regions of *Where next?* already shown."""

    def __init__(self, session: Session):
        self.session = session
        self.show = False
        self._uncertainty: dict[str, np.ndarray] = {}  # by the image layer's unique id
        self._trained_on: dict[str, np.ndarray] = {}  # annotations at the last training
        self.shown: list = []  # the regions shown since then (core.predict.guidance.Region)
        session.busy_changed.connect(self._on_busy)
        session.image_changed.connect(self._on_image)

    def uncertainty(self, image) -> np.ndarray | None:
        return None if image is None else self._uncertainty.get(image.unique_id)

    def update(self, image, z: int | None, uncertainty: np.ndarray | None) -> None:
        """Keep the uncertainty of a prediction of ``image``: one slice ``z`` or all of
        it; refresh the layer in place when it is shown."""
        if uncertainty is None or image is None:
            return
        shape = image_shape(image)
        u = np.asarray(uncertainty, np.float32)
        if z is None:
            if u.shape != shape:
                return
            full = u.copy()
        else:
            full = self._uncertainty.get(image.unique_id)
            if full is None or full.shape != shape:
                full = np.zeros(shape, np.float32)
            if full[z].shape != u.shape:
                return
            full[z] = u
        self._uncertainty[image.unique_id] = full
        if self.show:
            self.show_layer(image)

    def show_layer(self, image) -> None:
        """Create or update the uncertainty layer of ``image`` (if it has one)."""
        u = self.uncertainty(image)
        viewer = self.session.viewer
        if u is None or image not in viewer.layers:
            return
        name = uncertainty_name(image)
        if name in viewer.layers and np.shape(viewer.layers[name].data) == u.shape:
            layer = viewer.layers[name]
            layer.data = u
            layer.visible = True
            return
        write_extra_layer(viewer, image, "uncertainty", u, "image", **UNCERTAINTY_STYLE)

    def hide_layer(self, image) -> None:
        viewer = self.session.viewer
        if image is not None and uncertainty_name(image) in viewer.layers:
            viewer.layers[uncertainty_name(image)].visible = False

    def _on_image(self, _layer) -> None:
        self.shown.clear()

    def _on_busy(self, busy: bool) -> None:
        """A training starts: what is annotated now is what it learns from."""
        ann = self.session.annotations
        if busy and ann is not None and self.session.image is not None:
            self._trained_on[self.session.image.unique_id] = np.array(ann.data, copy=True)
            self.shown.clear()

    def changed(self, image, annotations: np.ndarray) -> np.ndarray:
        """Pixels annotated or corrected since the last training started."""
        from napari_unet.core.predict.guidance import changed_since

        before = self._trained_on.get(image.unique_id)
        out = changed_since(before, annotations)
        corrected = self._corrected(image)
        return out if corrected is None else out | corrected

    def _corrected(self, image) -> np.ndarray | None:
        """Pixels of the predictions layer the user changed since they were predicted."""
        viewer = self.session.viewer
        name, shape = predictions_name(image), image_shape(image)
        if name not in viewer.layers or np.shape(viewer.layers[name].data) != shape:
            return None
        data = np.asarray(viewer.layers[name].data)
        out = np.zeros(shape, bool)
        for k, made in self.session.marks(image).made.items():
            plane = data if data.ndim == 2 else data[k]
            if plane.shape == made.shape:
                (out if data.ndim == 2 else out[k])[...] = plane != made
        return out

    def window(self, ndim: int) -> tuple[int, ...]:
        """The model's patch (the last training's, else the default), per spatial axis of
        the windows: 2D slices of a stack."""
        from napari_unet.core.config import defaults_for

        bundle = self.session.bundle
        size = None
        if bundle is not None and bundle.history:
            size = bundle.history[-1].get("patch_size")
        if not size:
            size = defaults_for().train.patch_size
        return (int(size),) * min(2, ndim)

    def next_region(self, image, annotations: np.ndarray):
        """The best region that overlaps none shown since the last training (when none
        is left, the best again: the round starts over), or ``None`` when no window has
        unannotated uncertainty left."""
        from napari_unet.core.predict.guidance import next_regions

        u = self.uncertainty(image)
        if u is None:
            return None
        window, changed = self.window(u.ndim), self.changed(image, annotations)
        seen = np.zeros(u.shape, bool)
        for region in self.shown:  # the strokes painted there moved the ranking: the
            seen[region.slices] = True  # windows overlapping it would come next
        regions = next_regions(u, annotations, window, n=1, exclude=changed | seen)
        if not regions and self.shown:  # every region was shown: round again
            self.shown.clear()
            regions = next_regions(u, annotations, window, n=1, exclude=changed)
        if not regions:
            return None
        self.shown.append(regions[0])
        return regions[0]


def guidance_for(session: Session) -> Guidance:
    """The session's guidance, created on first use."""
    if session.guidance is None:
        session.guidance = Guidance(session)
    return session.guidance


class UncertaintyToggle(Container):
    """*Show uncertainty*: the uncertainty of the latest prediction as a layer over the
    image, updated in place with the live preview and with *Predict*."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self.session = session or session_for(viewer)
        self.show = CheckBox(
            value=False, text="Show uncertainty",
            tooltip="How unsure the model is of each pixel (0: sure, 1: every class as "
                    "likely), as a layer over the image, updated with the live preview and "
                    "with Predict. Paint where it is bright.")
        self.append(self.show)
        self.show.changed.connect(self._on_toggle)

    def _on_toggle(self, on: bool) -> None:
        guidance = guidance_for(self.session)
        guidance.show = bool(on)
        image = self.session.image
        if not on:
            guidance.hide_layer(image)
        elif guidance.uncertainty(image) is None:
            show_info("The uncertainty appears with the next prediction (Predict, or the "
                      "live preview while training).")
        else:
            guidance.show_layer(image)


class WhereNext(Container):
    """*Where next?*: go to the region whose unannotated pixels the model is least sure
    of, mark it, and on the next press go to the next one."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.button = PushButton(
            text="Where next?",
            tooltip="Show the region (the size of the model's training patch) where the "
                    "model is least sure of the pixels nobody annotated: strokes there "
                    "teach it most. Press again for the next region; regions annotated or "
                    "corrected since the last training are skipped.")
        self.status = status_label("")
        self.extend([self.button, self.status])
        self.button.changed.connect(self.go)

    def go(self):
        """Move the view to the next region and mark it; return the region (or None)."""
        session = self.session
        image, ann = session.image, session.annotations
        if image is None or ann is None:
            show_warning("Choose an image and its annotations first (Data and Annotate).")
            return None
        guidance = guidance_for(session)
        if guidance.uncertainty(image) is None:
            show_warning("Nothing to guide by yet: train or press Predict first.")
            return None
        annotations = np.asarray(ann.data)
        if annotations.shape != guidance.uncertainty(image).shape:
            show_warning("The annotations do not have the image's shape.")
            return None
        region = guidance.next_region(image, annotations)
        if region is None:
            self.status.value = "No uncertain unannotated region left: train again."
            show_info(self.status.value)
            return None
        self._show(image, region)
        where = "" if len(region.start) == 2 else f"slice {region.start[0]}, "
        self.status.value = (f"Region {len(guidance.shown)}: {where}rows {region.start[-2]}–"
                             f"{region.stop[-2] - 1}, columns {region.start[-1]}–"
                             f"{region.stop[-1] - 1} (mean uncertainty {region.mean:.2f}).")
        return region

    def _show(self, image, region) -> None:
        viewer = self._viewer
        scale = np.asarray(image.scale[-2:], float)
        translate = np.asarray(image.translate[-2:], float)
        if len(region.start) == 3:
            from .axes import z_axis

            axis = z_axis(image)
            if axis is not None:
                viewer.dims.set_current_step(viewer.dims.ndim - image.ndim + axis,
                                             region.start[0])
        (y0, x0), (y1, x1) = region.start[-2:], region.stop[-2:]
        corners = np.array([[y0, x0], [y0, x1], [y1, x1], [y1, x0]], float) - 0.5
        if len(region.start) == 3:
            corners = np.column_stack([np.full(4, region.start[0], float), corners])
        self._mark(image, corners)
        centre = translate + scale * (np.array([y0 + y1, x0 + x1]) / 2 - 0.5)
        viewer.camera.center = tuple(centre)
        h, w = viewer.canvas.size
        extent = scale * np.array([y1 - y0, x1 - x0])
        viewer.camera.zoom = 0.8 * min(h / extent[0], w / extent[1])

    def _mark(self, image, corners: np.ndarray) -> None:
        viewer = self._viewer
        ndim = corners.shape[1]
        scale = tuple(image.scale[-ndim:])
        translate = tuple(image.translate[-ndim:])
        if MARK_LAYER in viewer.layers and viewer.layers[MARK_LAYER].ndim == ndim:
            layer = viewer.layers[MARK_LAYER]
            layer.selected_data = set(range(layer.nshapes))
            layer.remove_selected()
            layer.add_rectangles([corners], edge_color=MARK_COLOR, face_color="transparent",
                                 edge_width=MARK_WIDTH)
            layer.scale, layer.translate = scale, translate
            layer.visible = True
            return
        with keep_selection(viewer):
            if MARK_LAYER in viewer.layers:
                viewer.layers.remove(MARK_LAYER)
            viewer.add_shapes([corners], shape_type="rectangle", name=MARK_LAYER,
                              edge_color=MARK_COLOR, face_color="transparent",
                              edge_width=MARK_WIDTH, scale=scale, translate=translate)
