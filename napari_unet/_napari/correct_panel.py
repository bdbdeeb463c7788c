"""Step 5, Correct: what the user changed on the predictions becomes annotation; train on."""

from __future__ import annotations

import napari
import numpy as np
from magicgui.widgets import CheckBox, Container, Label, PushButton, RadioButtons
from napari.utils.notifications import show_info, show_warning

from napari_unet.core.corrections import accept_edits

from .combos import form, row, status_label
from .layers import find_labels, image_shape, is_lazy_layer, predictions_name
from .review_panel import ReviewPanel
from .state import Session, session_for
from .training import CORRECTED_WEIGHT

HINT = (
    "Fix the predictions layer: paint missed\n"
    "objects, erase (label 0) false ones, or\n"
    "Delete them whole (in a volume: on every\n"
    "slice). Only what you change becomes\n"
    f"annotation, and weighs {CORRECTED_WEIGHT:g}× in training;\n"
    "erased stays background."
)


class CorrectPanel(Container):
    """Turn corrected predictions into annotations and continue training."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None,
                 train_panel=None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.train_panel = train_panel  # set by the workflow widget: "Accept and train"
        hint = Label(value=HINT)
        self.scope = RadioButtons(
            choices=[("Slice in view", "slice"), ("All predicted slices", "all")],
            value="slice", label="Accept", orientation="horizontal",
        )
        self.whole = CheckBox(
            value=False, text="Also accept what I left unchanged",
            tooltip="Every pixel of the slice that is not annotated yet takes the predicted "
                    "class, at normal weight: only when the whole slice is right",
        )
        self.accept = PushButton(text="Accept corrections")
        self.accept_train = PushButton(text="Accept and train")
        self.status = status_label("")
        self.review = ReviewPanel(viewer, self.session)  # objects to review, split, merge
        self.extend([hint, self.review, form(self.scope), self.whole,
                     row(self.accept, self.accept_train), self.status])
        self.accept.changed.connect(self.accept_corrections)
        self.accept_train.changed.connect(self.accept_and_train)
        self.accept_train.visible = train_panel is not None
        self.session.corrections_changed.connect(self.show_status)
        self.session.image_changed.connect(self.show_status)
        self.show_status()

    def accept_corrections(self) -> list[int]:
        """Make the user's edits of the predictions annotations (and, with *Also accept
        what I left unchanged*, the rest of the prediction where nothing is annotated);
        return the slices accepted."""
        image, annotations = self.session.image, self.session.annotations
        if image is None or annotations is None:
            show_warning("Choose an image and its annotations layer first.")
            return []
        shape = image_shape(image)
        predictions = find_labels(self._viewer, predictions_name(image), shape)
        if predictions is None:
            show_warning("There are no predictions to accept yet: press Predict first.")
            return []
        marks = self.session.marks(image)
        if len(shape) == 2:
            slices = [0] if 0 in marks.predicted else []
        elif self.scope.value == "slice" and not slices_in_view(self._viewer, image):
            # A rolled view (Z-X or Z-Y) or the 3D view: the edits may lie on any slice,
            # and only what changed is accepted, so every predicted slice is compared.
            slices = sorted(marks.predicted)
        elif self.scope.value == "slice":
            z = self.session.current_slice()
            slices = [z] if z in marks.predicted else []
        else:
            slices = sorted(marks.predicted)
        # Split, merged and deleted objects are always accepted whole: in a volume one
        # such edit spans the slices of its 3D objects, not only the slice in view.
        slices = sorted(set(slices) | (set(marks.pending) & marks.predicted))
        if not slices:
            show_warning("This slice has no prediction yet: press Predict first.")
            return []
        accepted, edited_count = [], 0
        chunked = is_lazy_layer(annotations)  # zarr: written by slice
        with annotations.block_history():
            for z in slices:
                made = marks.made.get(z)
                plane = (Ellipsis,) if len(shape) == 2 else (z,)
                current = np.asarray(predictions.data[plane])  # one slice read at a time
                if made is None or made.shape != current.shape:
                    continue
                a = np.asarray(annotations.data[plane])
                where, values, edited = accept_edits(a, made, current, whole=self.whole.value)
                weights = None
                if z in marks.pending:  # split and merged objects: their own annotations
                    taught, weights = marks.pending[z]
                    full = np.zeros(a.shape, a.dtype)
                    full[where] = values
                    mine = taught > 0
                    full[mine] = taught[mine]
                    where, edited = where | mine, edited | mine
                    values = full[where]
                if not where.any():
                    continue
                # napari's data_setitem fails on a hidden layer (it writes its slice
                # view, not computed while hidden): write the slice whole there too.
                if chunked or not annotations.visible:
                    a = a.copy()
                    a[where] = values
                    annotations.data[plane] = a
                    annotations.refresh()
                    annotations.events.paint(value=[])  # counts and autosave follow
                else:
                    yx = np.nonzero(where)
                    index = yx if len(shape) == 2 else (np.full_like(yx[0], z), *yx)
                    annotations.data_setitem(index, values)
                marks.pending.pop(z, None)
                marks.accept(z, edited, weights)
                edited_count += int(edited.sum())
                accepted.append(z)
        if not accepted:
            show_warning("Nothing to accept: you have not changed the predictions here. Paint "
                         "or erase on the predictions layer, or tick 'Also accept what I left "
                         "unchanged'.")
            return []
        self.session.corrections_changed.emit(image)
        show_info(f"Accepted {edited_count:,} corrected pixel(s) in {len(accepted)} slice(s) "
                  "as annotations. " + marks.summary(len(shape) == 2))
        return accepted

    def show_status(self, *_args) -> None:
        """Show the corrections accepted on the chosen image: read from the session, so
        every Correct panel of the viewer says the same."""
        image = self.session.image
        text = "" if image is None else self.session.marks(image).summary(
            len(image_shape(image)) == 2)
        try:
            self.status.value = text
        except RuntimeError:  # the panel was deleted with its window
            self.session.corrections_changed.disconnect(self.show_status)
            self.session.image_changed.disconnect(self.show_status)

    def accept_and_train(self):
        """Accept, then continue training from the current weights; return the worker."""
        if not self.accept_corrections() or self.train_panel is None:
            return None
        return self.train_panel.start_training()


def slices_in_view(viewer, image) -> bool:
    """Whether the view shows one Z slice of ``image`` (2D view, Z not displayed)."""
    from .axes import z_axis

    axis = z_axis(image)
    if axis is None:
        return True
    world = viewer.dims.ndim - image.ndim + axis
    return viewer.dims.ndisplay == 2 and world not in viewer.dims.displayed
