"""Training settings: a typed record and the form that edits it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, RadioButtons, SpinBox
from superqt import QCollapsible

from napari_unet.core.config import TrainOptions

Budget = Literal["seconds", "iterations"]


@dataclass
class TrainSettings:
    """How to train, as the form shows it. ``None`` (shown as "auto") is the default for
    the device (``core.config.defaults_for``), the same as on the command line."""

    every_image: bool = False  # train on every open image with an annotations layer
    budget: Budget = "seconds"
    seconds: float = 30.0
    iterations: int = 200
    patch_size: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    elastic_sigma: float | None = None
    snap_to_edges: bool = True  # the edge loss (core.train.losses.edge_loss)
    separate_touching: bool = False  # the U-Net paper's border weights between objects
    device: str = "auto"
    live_preview: bool = True
    preview_every: float = 3.0

    def options(self, **model: Any) -> TrainOptions:
        """The run's :class:`~napari_unet.core.config.TrainOptions` for painted
        annotations; ``model`` adds the model panel's choices (``start_model``, ...).
        Raises :class:`~napari_unet.core.errors.InputError` for settings that cannot work."""
        return TrainOptions(
            labels_kind="annotation",
            iterations=self.iterations if self.budget == "iterations" else None,
            seconds=self.seconds if self.budget == "seconds" else None,
            batch_size=self.batch_size, patch_size=self.patch_size,
            learning_rate=self.learning_rate, elastic_sigma=self.elastic_sigma,
            edge_weight=None if self.snap_to_edges else 0.0,
            border_weights=self.separate_touching, device=self.device,
            leave_core_free=True, **model,
        )


#: The value of a control that stands for "auto": the device's default.
AUTO = 0


def auto_float(value: float | None, auto: float = 0.0, **kwargs) -> FloatSpinBox:
    """A spin box whose minimum, ``auto``, shows "auto" and stands for ``None``."""
    box = FloatSpinBox(value=auto if value is None else value, min=auto, **kwargs)
    box.native.setSpecialValueText("auto")
    return box


def auto_choice(values: tuple[int, ...], value: int | None, **kwargs) -> ComboBox:
    """A drop-down of ``values`` with "auto" (:data:`AUTO`, standing for ``None``) first."""
    box = ComboBox(choices=[("auto", AUTO)] + [(str(v), v) for v in values], **kwargs)
    set_choice(box, value)
    return box


def set_choice(box: ComboBox, value: int | None) -> None:
    """Choose ``value`` (``None``: "auto"), adding it to the choices if it is new."""
    value = AUTO if value is None else value
    if value not in box.choices:
        values = sorted({*box.choices, value} - {AUTO})
        box.choices = [("auto", AUTO)] + [(str(v), v) for v in values]
    box.value = value


class TrainSettingsForm(Container):
    """A form bound to one :class:`TrainSettings`; :attr:`settings` is always current."""

    def __init__(self, settings: TrainSettings | None = None):
        super().__init__()
        self.margins = (0, 0, 0, 0)
        s = settings or TrainSettings()
        self.every_image = RadioButtons(
            choices=[("Chosen image", False), ("All annotated images", True)],
            value=s.every_image, label="Train on", orientation="horizontal",
        )
        self.budget = ComboBox(choices=[("seconds", "seconds"), ("iterations", "iterations")],
                               value=s.budget, label="Stop after")
        self.seconds = FloatSpinBox(value=s.seconds, min=1, max=24 * 3600, step=5, label="Seconds")
        self.iterations = SpinBox(value=s.iterations, min=1, max=10**6, step=50,
                                  label="Iterations")
        # "auto": the device's default (core.config.defaults_for), as on the command line.
        self.patch_size = auto_choice((64, 96, 128, 192, 256, 384, 512), s.patch_size,
                                      label="Patch size")
        self.batch_size = auto_choice((1, 2, 4, 8, 16, 32, 64), s.batch_size,
                                      label="Batch size")
        self.learning_rate = auto_float(s.learning_rate, max=1.0, step=1e-3,
                                        label="Learning rate")
        self.learning_rate.native.setDecimals(4)
        self.elastic_sigma = auto_float(s.elastic_sigma, auto=-1.0, max=30, step=1,
                                        label="Elastic strength",
                                        tooltip="Elastic deformation (pixels); 0 turns it off")
        self.snap_to_edges = CheckBox(
            value=s.snap_to_edges, text="Snap outlines to image edges",
            tooltip="A loss that puts object outlines on intensity edges, across the band "
                    "your strokes leave unpainted around objects",
        )
        self.separate_touching = CheckBox(
            value=s.separate_touching, text="Separate touching objects",
            tooltip="Weigh painted background between close objects up to 11x (the U-Net "
                    "paper's border weights): paint background in the gaps that matter",
        )
        self.device = ComboBox(choices=["auto", "cpu", "cuda", "mps"], value=s.device,
                               label="Device")
        self.live_preview = CheckBox(value=s.live_preview, text="Refresh the slice in view")
        self.extend([self.budget, self.seconds, self.iterations])
        # What a biologist rarely changes, folded away.
        self.advanced_form = Container(widgets=[
            self.every_image, self.patch_size, self.batch_size, self.learning_rate,
            self.elastic_sigma, self.snap_to_edges, self.separate_touching, self.device,
            self.live_preview,
        ])
        self.advanced_form.margins = (0, 0, 0, 0)
        self.advanced = QCollapsible("Advanced")
        self.advanced.setDuration(0)
        self.advanced.addWidget(self.advanced_form.native)
        self.advanced.layout().setContentsMargins(0, 0, 0, 0)
        self.native.layout().addWidget(self.advanced)
        self.budget.changed.connect(self._show_budget)
        self._show_budget(s.budget)
        self._preview_every = s.preview_every

    @property
    def settings(self) -> TrainSettings:
        return TrainSettings(
            every_image=bool(self.every_image.value), budget=self.budget.value,
            seconds=self.seconds.value, iterations=self.iterations.value,
            patch_size=self.patch_size.value or None, batch_size=self.batch_size.value or None,
            learning_rate=self.learning_rate.value or None,
            elastic_sigma=None if self.elastic_sigma.value < 0 else self.elastic_sigma.value,
            snap_to_edges=self.snap_to_edges.value,
            separate_touching=self.separate_touching.value, device=self.device.value,
            live_preview=self.live_preview.value, preview_every=self._preview_every,
        )

    @settings.setter
    def settings(self, value: TrainSettings) -> None:
        fields = asdict(value)
        self._preview_every = fields.pop("preview_every")
        for name in ("patch_size", "batch_size"):
            set_choice(getattr(self, name), fields.pop(name))
        auto = {"learning_rate": 0.0, "elastic_sigma": -1.0}
        for name, v in fields.items():
            getattr(self, name).value = auto[name] if v is None and name in auto else v

    def add_advanced(self, widget) -> None:
        """Fold ``widget`` (a magicgui widget) into the Advanced section too."""
        self.advanced_form.append(widget)

    def _show_budget(self, budget: str) -> None:
        self.seconds.visible = budget == "seconds"
        self.iterations.visible = budget == "iterations"
