"""Step 1, Data: choose the image layer, or open a TIFF stack; see its shape and type."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import Container, Label, PushButton
from napari.layers import Image
from napari.utils.notifications import show_error

from napari_unet import PLUGIN_NAME

from ._lifetime import CloseWatcher, Subscriptions
from .combos import form, layer_combo
from .layers import image_shape
from .state import Session, session_for


class DataPanel(Container):
    """Pick the image to segment; the other steps work on this choice."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.image = layer_combo(viewer, Image, "Image", exclude_rgb=False)
        self.open_button = PushButton(text="Open TIFF stack…")
        self.info = Label(value="")
        self.extend([form(self.image), self.open_button, self.info])
        self.image.changed.connect(self._on_image)
        self.open_button.changed.connect(self._ask_path)
        self._subs = Subscriptions()
        self._subs.connect(self.session.image_changed, self._on_session_image)
        self._watcher = CloseWatcher(self.native, self._subs.release)
        if self.image.value is None:
            choices = [v for v in self.image.choices if v is not None]
            if choices:
                self.image.value = choices[-1]
        self._on_image(self.image.value)

    def open_path(self, path: str | Path) -> Image | None:
        """Open a TIFF with the plugin's reader and choose its image layer."""
        try:
            layers = self._viewer.open(str(path), plugin=PLUGIN_NAME)
        except Exception as exc:  # the reader's message names the problem
            cause = exc.__cause__ or exc
            show_error(f"Could not open {Path(path).name}: {cause}")
            return None
        images = [layer for layer in layers if isinstance(layer, Image)]
        if images:
            self.image.value = images[0]
            return images[0]
        return None

    def _ask_path(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(
            self.native, "Open a TIFF stack", "", "TIFF (*.tif *.tiff *.ome.tif)"
        )
        if path:
            self.open_path(path)

    def _on_image(self, layer: Image | None) -> None:
        self.session.set_image(layer)
        self.info.value = describe(layer)

    def _on_session_image(self, layer: Image | None) -> None:
        if layer != self.image.value and (layer is None or layer in self._viewer.layers):
            self.image.value = layer


def describe(layer: Image | None) -> str:
    """``5 × 256 × 256 (ZYX) · uint16`` and a hint when the image cannot be used."""
    if layer is None:
        return "No image: open one, or choose\nFile > Open Sample > napari-unet."
    shape = image_shape(layer)
    axes = _axes(layer, len(shape))
    text = " × ".join(str(s) for s in shape)
    text += f" ({axes}) · {np.dtype(layer.dtype).name}"
    if layer.rgb:
        text += "\nRGB: right-click the layer > Split RGB,\nthen choose one channel."
    elif len(shape) > 3:
        text += "\nUse a 2D image or a Z stack (one channel)."
    elif len(shape) == 3:
        text += f"\n{shape[0]} slices of {shape[1]} × {shape[2]} pixels"
    return text


def _axes(layer: Image, ndim: int) -> str:
    """``ZYX``-style names of the image's axes: from the file, the layer, or Z / Y / X."""
    from .reader import named_axes

    axes = named_axes("".join(a for a in str(layer.metadata.get("axes") or "") if a not in "CS"))
    if len(axes) == ndim and axes.isalpha():
        return axes
    labels = [str(a).upper() for a in layer.axis_labels][-ndim:]
    if all(len(a) == 1 and a.isalpha() for a in labels):
        return named_axes("".join(labels))
    return "TZYX"[-ndim:] if ndim <= 4 else "?" * (ndim - 2) + "YX"
