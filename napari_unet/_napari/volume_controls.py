"""The Data panel's volume rows: the image's voxel size (shown, or typed when the file
gives none) and its volume mode (*Auto*, *2D slices*, *3D volume*), with what will run."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, LineEdit
from napari.layers import Image
from napari.utils.notifications import show_error

from napari_unet.core.errors import InputError
from napari_unet.core.io.volume import format_voxel_size, parse_voxel_size

from .axes import spatial_shape
from .combos import form, status_label
from .state import Session
from .volume import dims_in_effect, has_voxel_size, set_voxel_size, voxel_size

#: The choices of *Volume mode*: (text, the core's dims).
MODE_CHOICES = [("Auto", "auto"), ("2D slices", "2d"), ("3D volume", "3d")]
RUNS_TEXT = {"2d": "2D slices", "3d": "3D volume"}


class VolumeControls(Container):
    """Voxel size and volume mode of the session's image."""

    def __init__(self, viewer, session: Session):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session
        self.voxel = LineEdit(
            label="Voxel size (µm)",
            tooltip="Z, Y, X in micrometres per pixel, as the file gives it. When the file "
                    "gives none, type it (e.g. 0.3, 0.13, 0.13) and press Enter: it is set "
                    "on the image and all its layers, and kept in every file saved.")
        self.mode = ComboBox(
            label="Volume mode", choices=MODE_CHOICES, value="auto",
            tooltip="Auto: a Z stack is one volume when its slices overlap from one to the "
                    "next (a 3D model is trained and predicts it whole, in 3D objects); a "
                    "pile of unrelated images stays 2D slices. Choose 2D slices or 3D volume "
                    "to decide yourself.")
        self.voxel_hint = status_label("")
        self.runs = status_label("")
        self.mode_form = form(self.mode)
        self.extend([form(self.voxel), self.voxel_hint, self.mode_form, self.runs])
        self._updating = False
        self.voxel.native.editingFinished.connect(self._on_voxel_typed)
        self.mode.changed.connect(self._on_mode)

    # ------------------------------------------------------------------ actions
    def type_voxel_size(self, text: str) -> bool:
        """Set the image's voxel size from ``text`` (``0.3, 0.13, 0.13``); a notification
        and nothing changed when it is not a size."""
        image = self.session.image
        if image is None:
            return False
        try:
            size = parse_voxel_size(text, len(spatial_shape(image)))
            set_voxel_size(self._viewer, image, size, self.session)
        except InputError as exc:
            show_error(f"Voxel size not set: {exc}.")
            self.show()
            return False
        self._viewer.reset_view()
        self.session.dims_changed.emit(image)
        self.show()
        return True

    def show(self) -> None:
        """Refresh the rows from the session's image (no change to it)."""
        image = self.session.image
        self._updating = True
        try:
            usable = isinstance(image, Image) and not image.rgb and len(
                spatial_shape(image)) in (2, 3)
            self.visible = usable
            if not usable:
                return
            stack = len(spatial_shape(image)) == 3
            self.voxel.value = format_voxel_size(voxel_size(image))
            self.voxel.label = "Voxel size (µm)" if stack else "Pixel size (µm)"
            self.voxel_hint.value = (
                ("Z, Y, X from the file or as typed." if stack else "Y, X from the file or "
                 "as typed.") if has_voxel_size(image)
                else "The file gives no voxel size: type it\n(Z, Y, X in µm) and press Enter."
                if stack else "The file gives no pixel size: type it\n(Y, X in µm) if you "
                "know it.")
            self.mode_form.visible = stack
            self.mode.value = self.session.dims_choice(image)
            dims, why = dims_in_effect(self.session, image)
            self.runs.visible = stack
            self.runs.value = runs_text(dims, why)
        finally:
            self._updating = False

    # ----------------------------------------------------------------- handlers
    def _on_voxel_typed(self) -> None:
        image = self.session.image
        if self._updating or image is None:
            return
        if self.voxel.value.strip() == format_voxel_size(voxel_size(image)):
            return
        self.type_voxel_size(self.voxel.value)

    def _on_mode(self, choice: str) -> None:
        image = self.session.image
        if self._updating or image is None:
            return
        self.session.set_dims(image, choice)
        self.show()


def runs_text(dims: str, why: str) -> str:
    """``Runs as: 3D volume (100 slices that overlap ...)``."""
    return f"Runs as: {RUNS_TEXT[dims]} ({why})"
