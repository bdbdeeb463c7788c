"""Training settings: a typed record and the form that edits it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, RadioButtons, SpinBox
from superqt import QCollapsible

Budget = Literal["seconds", "iterations"]


@dataclass
class TrainSettings:
    """How to train; the defaults segment the sample stack in about half a minute on a
    laptop CPU."""

    every_image: bool = False  # train on every open image with an annotations layer
    budget: Budget = "seconds"
    seconds: float = 30.0
    iterations: int = 200
    patch_size: int = 128
    batch_size: int = 4
    learning_rate: float = 3e-3
    elastic_sigma: float = 6.0
    snap_to_edges: bool = True  # the edge loss (core.losses.edge_loss)
    separate_touching: bool = False  # the U-Net paper's border weights between objects
    device: str = "auto"
    live_preview: bool = True
    preview_every: float = 3.0

    def train_options(self) -> dict[str, Any]:
        """Keyword arguments of ``core.train.TrainConfig``."""
        from napari_unet.defaults import ANCHOR_WEIGHT, EDGE_WEIGHT

        return {
            "edge_weight": EDGE_WEIGHT if self.snap_to_edges else 0.0,
            "anchor_weight": ANCHOR_WEIGHT,
            "iterations": self.iterations if self.budget == "iterations" else None,
            "seconds": self.seconds if self.budget == "seconds" else None,
            "patch_size": self.patch_size,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "device": self.device,
        }


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
        self.patch_size = SpinBox(value=s.patch_size, min=32, max=1024, step=16,
                                  label="Patch size")
        self.batch_size = SpinBox(value=s.batch_size, min=1, max=256, label="Batch size")
        self.learning_rate = FloatSpinBox(value=s.learning_rate, min=1e-5, max=1.0, step=1e-3,
                                          label="Learning rate")
        self.learning_rate.native.setDecimals(4)
        self.elastic_sigma = FloatSpinBox(value=s.elastic_sigma, min=0, max=30, step=1,
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
        patch = max(32, self.patch_size.value // 16 * 16)
        return TrainSettings(
            every_image=bool(self.every_image.value), budget=self.budget.value,
            seconds=self.seconds.value, iterations=self.iterations.value, patch_size=patch,
            batch_size=self.batch_size.value, learning_rate=self.learning_rate.value,
            elastic_sigma=self.elastic_sigma.value, snap_to_edges=self.snap_to_edges.value,
            separate_touching=self.separate_touching.value, device=self.device.value,
            live_preview=self.live_preview.value, preview_every=self._preview_every,
        )

    @settings.setter
    def settings(self, value: TrainSettings) -> None:
        fields = asdict(value)
        self._preview_every = fields.pop("preview_every")
        for name, v in fields.items():
            getattr(self, name).value = v

    def add_advanced(self, widget) -> None:
        """Fold ``widget`` (a magicgui widget) into the Advanced section too."""
        self.advanced_form.append(widget)

    def _show_budget(self, budget: str) -> None:
        self.seconds.visible = budget == "seconds"
        self.iterations.visible = budget == "iterations"
