"""Step 1, Data: choose the image layer, or open a TIFF stack; see its shape and type;
choose its channels: other image layers of its shape (a file split by channel), or the
channels along its first axis."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, Label, PushButton, Select
from napari.layers import Image
from napari.utils.notifications import show_error

from napari_unet import PLUGIN_NAME

from ._lifetime import CloseWatcher, Subscriptions
from .axes import CHANNEL_KEY, channel_axis, set_channel_axis
from .combos import form, layer_combo
from .layers import image_shape
from .state import Session, session_for
from .volume_controls import VolumeControls

#: Rows of the channel list in view before it scrolls.
CHANNEL_ROWS = 4


class DataPanel(Container):
    """Pick the image to segment; the other steps work on this choice."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None):
        super().__init__(labels=False)
        self._viewer = viewer
        self.session = session or session_for(viewer)
        self.image = layer_combo(viewer, Image, "Image", exclude_rgb=False)
        self.channel_axis = ComboBox(
            label="Channel axis", choices=[("none", None)], value=None,
            tooltip="When the image layer holds its channels along its first axis (C, Y, X "
                    "or C, Z, Y, X), say so here; a file opened with napari-unet's reader "
                    "gives one layer per channel instead: choose them below.")
        self.channels = Select(
            label="Channels", choices=[], value=[],
            tooltip="The channels the model reads, in this order: image layers of the same "
                    "shape (one per channel), or the channels of the image's channel axis. "
                    "Ctrl-click (Cmd on macOS) to choose several. A model keeps its channels "
                    "and chooses them again when loaded.")
        self.channels.native.setMaximumHeight(22 * CHANNEL_ROWS + 6)
        self.open_button = PushButton(text="Open TIFF stack…")
        self.info = Label(value="")
        self.volume = VolumeControls(viewer, self.session)
        self.extend([form(self.image, self.channel_axis, self.channels), self.open_button,
                     self.info, self.volume])
        self._updating = False
        self.image.changed.connect(self._on_image)
        self.channel_axis.changed.connect(self._on_channel_axis)
        self.channels.changed.connect(self._on_channels)
        self.open_button.changed.connect(self._ask_path)
        self._subs = Subscriptions()
        self._subs.connect(self.session.image_changed, self._on_session_image)
        self._subs.connect(self.session.model_changed, self._on_model)
        for emitter in (viewer.layers.events.inserted, viewer.layers.events.removed,
                        viewer.layers.events.moved):
            self._subs.connect(emitter, self._on_layers)
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
        self._show_channels()

    # ------------------------------------------------------------------ channels
    def choose_channels(self, choice: list) -> None:
        """Choose the channels: image layers (one per channel), or channel indices of the
        image's channel axis; in the order of the list."""
        self.channels.value = list(choice)

    def channel_layer_choices(self) -> list[Image]:
        """Image layers that can be channels of the chosen image: those of its shape."""
        image = self.session.image
        if image is None or image.rgb:
            return []
        shape = np.shape(image.data)
        return [layer for layer in self._viewer.layers if isinstance(layer, Image)
                and not layer.rgb and np.shape(layer.data) == shape]

    def _show_channels(self) -> None:
        """Refresh the channel controls from the session (no session change)."""
        layer = self.session.image
        self._updating = True
        try:
            axes = [("none", None)]
            if layer is not None and not layer.rgb and layer.ndim >= 3:
                axes.append((f"first axis ({layer.data.shape[0]})", 0))
            self.channel_axis.choices = axes
            self.channel_axis.value = channel_axis(layer)
            self.channel_axis.visible = len(axes) > 1
            if channel_axis(layer) is not None:
                n = layer.data.shape[0]
                self.channels.choices = [(f"channel {i}", i) for i in range(n)]
                chosen = self.session.channel_indices
                self.channels.value = list(range(n) if chosen is None else chosen)
            else:
                options = self.channel_layer_choices()
                self.channels.choices = [(c.name, c) for c in options]
                self.channels.value = [c for c in self.session.channel_layers if c in options]
            self.channels.visible = len(self.channels.choices) > 1
        finally:
            self._updating = False
        self.info.value = describe(layer, self.session)
        self.volume.show()

    def _on_channel_axis(self, axis: int | None) -> None:
        layer = self.session.image
        if self._updating or layer is None:
            return
        set_channel_axis(layer, axis)
        self.session.set_channels()
        self._show_channels()

    def _on_channels(self, value: list) -> None:
        if self._updating or self.session.image is None:
            return
        order = list(self.channels.choices)
        chosen = sorted(value, key=lambda v: next(i for i, c in enumerate(order) if c is v
                                                   or c == v))
        if channel_axis(self.session.image) is not None:
            self.session.set_channels(indices=tuple(int(c) for c in chosen))
        else:
            self.session.set_channels(layers=chosen)
        self.info.value = describe(self.session.image, self.session)

    def _on_layers(self, event=None) -> None:
        try:
            self._show_channels()
        except RuntimeError:  # the widget was deleted with its window
            self._subs.release()

    def _on_model(self, bundle) -> None:
        """Choose the channels a loaded model was trained on, where the image has them."""
        image = self.session.image
        if bundle is None or bundle.channels is None or image is None:
            return
        wanted = list(bundle.channels)
        if channel_axis(image) is not None:
            if max(wanted) < image.data.shape[0] and tuple(wanted) != (
                    self.session.channel_indices or tuple(range(image.data.shape[0]))):
                self.session.set_channels(indices=tuple(wanted))
                self._show_channels()
            return
        source = image.metadata.get("path")
        siblings = {layer.metadata.get(CHANNEL_KEY): layer
                    for layer in self.channel_layer_choices()
                    if source is not None and layer.metadata.get("path") == source}
        if all(c in siblings for c in wanted):
            layers = [siblings[c] for c in wanted]
            if layers != self.session.channel_layers:
                self.session.set_channels(layers=layers)
                self._show_channels()

    def _on_session_image(self, layer: Image | None) -> None:
        if layer != self.image.value and (layer is None or layer in self._viewer.layers):
            self.image.value = layer


def describe(layer: Image | None, session: Session | None = None) -> str:
    """``5 × 256 × 256 (ZYX) · uint16``, the channels chosen, and a hint when the image
    cannot be used."""
    if layer is None:
        return "No image: open one, or choose\nFile > Open Sample > napari-unet."
    shape = image_shape(layer)
    axes = _axes(layer, len(shape))
    text = " × ".join(str(s) for s in shape)
    text += f" ({axes}) · {np.dtype(layer.dtype).name}"
    if layer.rgb:
        text += "\nRGB: right-click the layer > Split RGB,\nthen choose its channels."
    elif len(shape) > 3:
        text += "\nUse a 2D image or a Z stack: set its\nchannel axis, or open one time point."
    elif len(shape) == 3:
        text += f"\n{shape[0]} slices of {shape[1]} × {shape[2]} pixels"
    if session is not None and not layer.rgb and len(shape) <= 3:
        text += "\n" + _channels_text(session)
    return text


def _channels_text(session: Session) -> str:
    """``Model input: 2 channels (a [0], a [1])``: what training and prediction read."""
    from .channel_choice import channel_layers, chosen_count

    n = chosen_count(session)
    if n == 1 and channel_axis(session.image) is None and channel_layers(session) == [
            session.image]:
        return "Model input: one channel (this image)"
    if channel_axis(session.image) is not None:
        indices = session.channel_indices
        names = [str(i) for i in (range(n) if indices is None else indices)]
        names = [f"channel {names[0]}"] + names[1:]
    else:
        names = [layer.name for layer in channel_layers(session)]
    return f"Model input: {n} channel{'s' if n != 1 else ''} ({', '.join(names)})"


def _axes(layer: Image, ndim: int) -> str:
    """``ZYX``-style names of the image's axes: from the file, the layer, or Z / Y / X."""
    from .reader import named_axes

    axes = named_axes("".join(a for a in str(layer.metadata.get("axes") or "") if a not in "CS"))
    if channel_axis(layer) is not None and len(axes) != ndim:
        axes = ""
    if len(axes) == ndim and axes.isalpha():
        return axes
    labels = [str(a).upper() for a in layer.axis_labels][-ndim:]
    if all(len(a) == 1 and a.isalpha() for a in labels):
        return named_axes("".join(labels))
    return "TZYX"[-ndim:] if ndim <= 4 else "?" * (ndim - 2) + "YX"
