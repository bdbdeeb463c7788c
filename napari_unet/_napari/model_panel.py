"""The model: a new one (its architecture) or one loaded from a file; saving it."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton
from napari.utils.notifications import show_error, show_info, show_warning

from napari_unet.core.config import START_ARCHITECTURE, START_MODEL
from napari_unet.core.errors import InputError, NapariUnetError

from ._lifetime import CloseWatcher, Subscriptions
from .channel_choice import image_input, mismatch
from .combos import row
from .layers import image_shape
from .state import Session
from .train_settings import AUTO, auto_choice

MODEL_FILTER = ("napari-unet model (*.pt *.pth *.unet *.zip);;"
                "bioimage.io model package (*.zip);;All files (*)")
PACKAGE_FILTER = "bioimage.io model package (*.zip)"
PRETRAINED_TOOLTIP = ("a U-Net pre-trained on synthetic fluorescence nuclei; a few strokes then "
                      "fine-tune it")


#: Depth, base channels and up-sampling of the shipped starting model.
START_SHAPE = (START_ARCHITECTURE.depth, START_ARCHITECTURE.base_channels,
               START_ARCHITECTURE.bilinear)


def _start_model_present() -> bool:
    return START_MODEL.is_file()


class ModelPanel(Container):
    """New model settings, Load / Save / Export, and what the current model is."""

    def __init__(self, session: Session, pretrained: bool = True):
        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self.session = session
        self.info = Label(value="")
        self.pretrained = CheckBox(value=pretrained, text="Start from the nuclei model",
                                   tooltip=PRETRAINED_TOOLTIP)
        self.depth = auto_choice((1, 2, 3, 4, 5, 6), None, label="Depth")
        self.base_channels = auto_choice((8, 16, 32, 64), None, label="Base channels")
        self.upsampling = ComboBox(choices=[("bilinear", True), ("transposed conv", False)],
                                   value=True, label="Upsampling")
        self.checkpointing = CheckBox(value=False, text="Save memory (checkpointing)")
        self.new = PushButton(text="New model")
        self.load = PushButton(text="Load…")
        self.save = PushButton(text="Save…")
        self.export = PushButton(text="Export…", tooltip="write the model as a bioimage.io "
                                 "model package (.zip) for the Model Zoo, deepImageJ, "
                                 "ilastik... or napari-unet elsewhere")
        self._model_path: Path | None = None  # the file the current model was loaded from
        # The controls' own values while they show the starting model's shape.
        self._custom = (AUTO, AUTO, True)
        # The shape of a new model: the Train step shows it in its Advanced section.
        self.shape_widgets = [self.depth, self.base_channels, self.upsampling,
                              self.checkpointing]
        self.extend([self.info, self.pretrained, row(self.new, self.load, self.save,
                                                          self.export)])
        self.pretrained.changed.connect(self._on_pretrained)
        self._on_pretrained(self.pretrained.value)
        self.new.changed.connect(self.new_model)
        self.load.changed.connect(self._ask_load)
        self.save.changed.connect(self._ask_save)
        self.export.changed.connect(self._ask_export)
        self._subs = Subscriptions()
        self._subs.connect(session.model_changed, self._refresh)
        self._subs.connect(session.busy_changed, self._refresh)
        self._subs.connect(session.image_changed, self._refresh)
        self._subs.connect(session.dims_changed, self._refresh)
        self._watcher = CloseWatcher(self.native, self._subs.release)
        self._refresh()

    def options(self) -> dict:
        """A new model's part of :class:`~napari_unet.core.config.TrainOptions`: the
        nuclei model, or random weights of the chosen (or the device's default) shape."""
        if self.pretrained.value:
            return {"start_model": "nuclei", "checkpointing": self.checkpointing.value}
        return {"start_model": "none", "depth": self.depth.value or None,
                "base_channels": self.base_channels.value or None,
                "bilinear": self.upsampling.value, "checkpointing": self.checkpointing.value}

    def new_model(self) -> None:
        """Forget the current model: the next training starts a new one (from the nuclei
        model when the box is checked, else from fresh weights)."""
        self._model_path = None
        self.session.set_model(None, "new model")

    def load_model(self, path: str | Path) -> bool:
        """Load a model file (safely) or a bioimage.io package that napari-unet exported
        (``.zip``); errors become a notification."""
        from napari_unet.core.models.checkpoint import load_bundle
        from napari_unet.core.share.package import is_package_path, load_package

        try:
            bundle = load_package(path) if is_package_path(path) else load_bundle(path)
        except NapariUnetError as exc:
            show_error(str(exc))
            return False
        self._model_path = Path(path)
        self.session.set_model(bundle, Path(path).name)  # chooses its channels where it can
        problem = mismatch(self.session, bundle)
        if problem is not None:
            show_warning(f"{Path(path).name}: {problem}.")
        return True

    def save_model(self, path: str | Path) -> bool:
        """Save the current model atomically; errors become a notification."""
        bundle = self.session.bundle
        if bundle is None:
            show_error("There is no trained model to save yet: train one first.")
            return False
        try:
            bundle.save(path)
        except Exception as exc:  # a full disk, a file-size limit, a protected file...
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            show_error(f"Could not save the model to {path}: {reason}. The model "
                       f"({bundle.iterations} iterations) is kept here: free some space or "
                       "choose another folder, and Save again.")
            return False
        self.session.model_source = Path(path).name
        self._model_path = Path(path)
        show_info(f"Model saved to {path}")
        self._refresh()
        return True

    def export_model(self, path: str | Path, name: str | None = None) -> bool:
        """Write the current model as a bioimage.io model package (``.zip``) at ``path``,
        named ``name`` (derived from the file name without one); its test tensors come
        from the slice in view of the image (the nuclei sample without one). Errors
        become a notification."""
        from napari_unet.core.io.paths import check_outputs
        from napari_unet.core.share.export import export_bioimageio

        bundle = self.session.bundle
        if bundle is None:
            show_error("There is no trained model to export yet: train or load one first.")
            return False
        path = Path(path)
        if path.suffix.lower() != ".zip":
            path = path.with_name(path.name + ".zip")
        try:
            check_outputs([("the package", path)], [("the model file", self._model_path)])
            result = export_bioimageio(bundle, path, test_image=self._test_image(bundle),
                                       name=name or None)
        except NapariUnetError as exc:
            show_error(f"Could not export the model: {exc}")
            return False
        except Exception as exc:  # a full disk, a file-size limit, a failed trace...
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            show_error(f"Could not export the model to {path}: {reason}")
            return False
        left = "".join(f" ({fmt} left out: {why})" for fmt, why in result.skipped.items())
        show_info(f"Model exported to {path}{left}")
        return True

    def _test_image(self, bundle):
        """The slice in view of the image (its chosen channels) when it fits the model
        and is large enough, else the shipped nuclei sample (for one-channel models)."""
        from napari_unet.samples import sample_image

        layer = self.session.image
        if (layer is None or getattr(layer, "rgb", False)
                or len(image_shape(layer)) not in (2, 3)
                or mismatch(self.session, bundle) is not None):
            if bundle.in_channels > 1:
                raise InputError(f"the model reads {bundle.in_channels} channels: choose an "
                                 "image and those channels (Data step) for its test tensors")
            return sample_image()
        data = image_input(self.session, self.session.current_slice())
        side = 2**bundle.config.depth
        if min(data.shape[-2:]) >= side and data.dtype.kind in "uif":
            return data
        if bundle.in_channels > 1:
            raise InputError(f"the image is smaller than {side} x {side} pixels, the "
                             "smallest input of this model")
        return sample_image()

    def _export_name(self) -> str:
        if self._model_path is None:
            return "model.zip"
        if self._model_path.suffix.lower() == ".zip":
            return str(self._model_path.with_name(f"{self._model_path.stem}-export.zip"))
        return str(self._model_path.with_suffix(".zip"))

    def _ask_export(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Export as a bioimage.io package",
                                              self._export_name(), PACKAGE_FILTER)
        if not path:
            return
        from qtpy.QtCore import Qt
        from qtpy.QtWidgets import QApplication, QInputDialog

        from napari_unet.core.share.names import package_name

        name, ok = QInputDialog.getText(
            self.native, "Export as a bioimage.io package",
            "Model name in the package (letters, digits, spaces, _ + - ( )):",
            text=package_name(Path(path).stem))
        if not ok:
            return

        # A few seconds on a CPU (tracing, test tensors): say so with the cursor.
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            self.export_model(path, name.strip() or None)
        finally:
            QApplication.restoreOverrideCursor()

    def _ask_load(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self.native, "Load a model", "", MODEL_FILTER)
        if path:
            self.load_model(path)

    def _ask_save(self) -> None:
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self.native, "Save the model", "model.pt",
                                              MODEL_FILTER)
        if path:
            self.save_model(path)

    def _on_pretrained(self, checked: bool) -> None:
        """Show the starting model's shape while checked; give the controls back their
        own values when unchecked."""
        shape = (self.depth, self.base_channels, self.upsampling)
        if checked:
            self._custom = tuple(w.value for w in shape)
            values = START_SHAPE
        else:
            values = self._custom
        for widget, value in zip(shape, values):
            widget.value = value
        self._refresh()

    def _refresh(self, *_args) -> None:
        bundle = self.session.bundle
        busy = self.session.training is not None and self.session.training.running
        fresh = bundle is None
        self.pretrained.enabled = fresh and not busy
        for widget in (self.depth, self.base_channels, self.upsampling):
            widget.enabled = fresh and not busy and not self.pretrained.value
        self.new.enabled = self.load.enabled = not busy
        self.save.enabled = self.export.enabled = not fresh and not busy
        from .volume import dims_in_effect

        volume = fresh and dims_in_effect(self.session, self.session.image)[0] == "3d"
        nuclei = self.pretrained.value and _start_model_present()
        if volume and nuclei:  # the 2D nuclei model, inflated to 3D
            self.info.value = ("New 3D model (a volume): starts\nfrom the nuclei model, "
                               "made 3D.")
        elif volume:
            self.info.value = "New 3D model (a volume): trained\nfrom scratch when training starts."
        elif fresh and nuclei:
            self.info.value = "New model: fine-tuned from the\nnuclei model when training starts."
        elif fresh:
            self.info.value = "New model: trained from scratch\nwhen training starts."
        else:
            c = bundle.config
            kind = "bilinear" if c.bilinear else "transposed"
            from napari_unet.core.scale import size_text

            size = size_text(bundle.object_size)
            size = f"\n{size}" if size else ""
            self.info.value = (
                f"Model: {self.session.model_source}\n{bundle.iterations} iterations, "
                f"{bundle.n_classes} classes\n{'3D, ' if c.dims == 3 else ''}depth "
                f"{c.depth}, {c.base_channels} channels, "
                f"{kind}{size}"
            )
