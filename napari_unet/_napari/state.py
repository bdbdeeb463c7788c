"""The state the panels share: one :class:`Session` per viewer.

The session holds the chosen image and annotations layers, the class list, the current
model and which slices were predicted or corrected. Panels read it and listen to its
signals; none of them keeps its own copy.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from psygnal import Signal

from napari_unet.core.decision import FOREGROUND_THRESHOLD
from napari_unet.core.labels import DEFAULT_COLORS

if TYPE_CHECKING:
    import napari
    from napari.layers import Image, Labels

    from napari_unet.core.models.checkpoint import ModelBundle

#: Colours of the annotation classes in the GUI: background strokes must stay visible.
GUI_COLORS = ("#3d8bfd",) + DEFAULT_COLORS[1:]


@dataclass
class ClassSpec:
    """One class: annotation value ``value`` (1 = background), a name and a colour."""

    value: int
    name: str
    color: str


def default_classes(n: int = 2) -> list[ClassSpec]:
    names = ["background", "nucleus"] + [f"class {i}" for i in range(2, n)]
    return [ClassSpec(i + 1, names[i], GUI_COLORS[i % len(GUI_COLORS)]) for i in range(n)]


@dataclass
class SliceMarks:
    """Slices of one image that were predicted, and the corrections accepted on them.

    ``made`` keeps each predicted slice as the model made it (slice 0 for a 2D image):
    what the user changed since is what the predictions layer differs from it in.
    ``corrected_pixels`` marks, per slice, the pixels accepted from the user's edits: the
    one record of what was corrected (:attr:`corrected`, :meth:`summary` read it).
    ``correction_weights`` holds, per slice, loss weights above the corrections' own
    (the border weights of split and merged objects); ``pending`` the annotations and
    weights of split and merged objects not accepted yet (see ``review_panel``).
    ``probabilities`` keeps, per slice, the class probabilities (C, Y, X) of the latest
    *Predict* with objects and ``probabilities_of`` what made them (:meth:`keep`): the
    list of objects to review ranks from them instead of predicting again.
    """

    predicted: set[int] = field(default_factory=set)
    made: dict[int, np.ndarray] = field(default_factory=dict)
    corrected_pixels: dict[int, np.ndarray] = field(default_factory=dict)
    correction_weights: dict[int, np.ndarray] = field(default_factory=dict)
    pending: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)
    probabilities_of: tuple | None = None

    def record(self, labels: np.ndarray, z: int | None) -> None:
        """Remember a prediction as made: one slice ``z``, or a whole 2D image or stack."""
        if z is not None:
            slices = {z: labels}
        elif labels.ndim == 3:
            slices = dict(enumerate(labels))
        else:
            slices = {0: labels}
        for k, data in slices.items():
            self.predicted.add(k)
            self.made[k] = np.array(data, copy=True)

    def keep(self, source: tuple, probabilities: np.ndarray, z: int | None) -> None:
        """Keep the class probabilities of a prediction made by ``source`` (see
        :func:`prediction_source`): one slice ``z`` (C, Y, X), a 2D image (C, Y, X) or a
        stack (Z, C, Y, X). Those of another source are dropped."""
        if not same_source(self.probabilities_of, source):
            self.probabilities = {}
            self.probabilities_of = source
        if z is not None:
            self.probabilities[z] = probabilities
        elif probabilities.ndim == 3:
            self.probabilities[0] = probabilities
        else:
            self.probabilities.update(enumerate(probabilities))

    def kept(self, source: tuple, slices) -> dict[int, np.ndarray] | None:
        """The probabilities of ``slices`` kept from a prediction by ``source`` (``None``
        unless every one of them was)."""
        if not same_source(self.probabilities_of, source) or any(
                z not in self.probabilities for z in slices):
            return None
        return {z: self.probabilities[z] for z in slices}

    def accept(self, z: int, edited: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Record the pixels ``edited`` of slice ``z`` as accepted corrections (and their
        ``weights``, if above the usual)."""
        previous = self.corrected_pixels.get(z)
        self.corrected_pixels[z] = edited.copy() if previous is None else previous | edited
        if weights is not None:
            old = self.correction_weights.get(z)
            self.correction_weights[z] = weights if old is None else np.maximum(old, weights)

    @property
    def corrected(self) -> list[int]:
        """The slices with accepted corrections, in order."""
        return sorted(z for z, m in self.corrected_pixels.items() if m.any())

    def summary(self, planar: bool) -> str:
        """The corrections accepted so far, in words (``planar``: a 2D image)."""
        slices = self.corrected
        pixels = sum(int(self.corrected_pixels[z].sum()) for z in slices)
        if not slices:
            return "No correction accepted yet."
        if planar:
            return f"Corrected so far: {pixels:,} pixel(s)."
        listed = ", ".join(str(z) for z in slices[:8]) + (", …" if len(slices) > 8 else "")
        return (f"Corrected so far: {pixels:,} pixel(s) in {len(slices)} slice(s) "
                f"(slice {listed}).")


def prediction_source(session: Session, bundle) -> tuple:
    """What a prediction of the session's image depends on besides the image: the model
    (the object itself: a copy of a training's weights is another), the image size
    choice and the channels read."""
    return (bundle, session.rescale, tuple(layer.unique_id for layer in session.channel_layers),
            session.channel_indices)


def same_source(a: tuple | None, b: tuple | None) -> bool:
    """Whether two :func:`prediction_source` are the same (the models by identity)."""
    return a is not None and b is not None and a[0] is b[0] and a[1:] == b[1:]


class Session:
    """What the panels of one viewer share. Obtain it with :func:`session_for`.

    Layers are compared with ``==``, never ``is``: napari hands plugin widgets proxies
    of the viewer and its layers, and two proxies of one layer are equal, not identical.
    """

    image_changed = Signal(object)  # Image | None
    annotations_changed = Signal(object)  # Labels | None
    classes_changed = Signal()
    model_changed = Signal(object)  # ModelBundle | None
    busy_changed = Signal(bool)  # training running or not
    channels_changed = Signal()
    dims_changed = Signal(object)  # Image: its volume mode or voxel size changed
    corrections_changed = Signal(object)  # Image: corrections were accepted on it

    def __init__(self, viewer: napari.Viewer):
        self._viewer = weakref.ref(viewer)
        self.image: Image | None = None
        # The channels the model reads (see channel_choice): the layers that are them, in
        # order (empty: the image alone), or the indices on the image's channel axis
        # (None: all of them).
        self.channel_layers: list[Image] = []
        self.channel_indices: tuple[int, ...] | None = None
        self.annotations: Labels | None = None
        self.classes: list[ClassSpec] = default_classes()
        self.bundle: ModelBundle | None = None
        self.model_source = "new model"
        self.model_time_ns = time.time_ns()  # when the current model last changed
        self._marks: dict[str, SliceMarks] = {}  # by the layer's unique id
        self.training = None  # the TrainingController, created by the first panel needing it
        self.guidance = None  # the uncertainty and Where next? (guidance_panel.guidance_for)
        # Foreground where 1 - p(background) >= this: the Predict panel sets it, and both
        # prediction and the live preview during training decide with it.
        self.foreground_threshold = FOREGROUND_THRESHOLD
        # How prediction sizes each slice for the model (core.scale): "auto", "off" or a
        # factor; set in the Predict panel, used by prediction and the live preview alike.
        self.rescale: str | float = "auto"
        # The volume mode chosen per image (by the layer's unique id): "auto", "2d" or
        # "3d" (core.io.volume); set in the Data panel, read by training and prediction.
        self._dims: dict[str, str] = {}
        # What Auto decided per image (by unique id), with the voxel size it decided at:
        # (voxel size, dims, why). Deciding reads a few slices: once per image.
        self.auto_dims: dict[str, tuple] = {}
        # The live preview of a 3D model: (the volume it was computed for, the volume's
        # normalisation); once per volume, not per preview (volume_jobs.preview_stats).
        self.preview_stats: tuple = (None, ())

    @property
    def viewer(self) -> napari.Viewer:
        viewer = self._viewer()
        if viewer is None:  # pragma: no cover - the session dies with its viewer
            raise RuntimeError("the viewer of this session was closed")
        return viewer

    def set_image(self, layer: Image | None) -> None:
        if layer != self.image:
            self.image = layer
            self.channel_layers = [] if layer is None else [layer]
            self.channel_indices = None
            self.image_changed.emit(layer)

    def set_channels(self, layers: list[Image] | None = None,
                     indices: tuple[int, ...] | None = None) -> None:
        """Choose the layers that are the channels, or the indices on the image's
        channel axis."""
        self.channel_layers = list(layers) if layers else (
            [] if self.image is None else [self.image])
        self.channel_indices = None if indices is None else tuple(indices)
        self.channels_changed.emit()

    def set_annotations(self, layer: Labels | None) -> None:
        if layer != self.annotations:
            self.annotations = layer
            self.annotations_changed.emit(layer)

    def set_classes(self, classes: list[ClassSpec]) -> None:
        self.classes = [ClassSpec(i + 1, c.name, c.color) for i, c in enumerate(classes)]
        self.classes_changed.emit()

    def set_model(self, bundle: ModelBundle | None, source: str | None = None) -> None:
        """Make ``bundle`` the current model; adopt its class names and colours."""
        self.bundle = bundle
        self.model_time_ns = time.time_ns()
        if source is not None:
            self.model_source = source
        if bundle is not None and len(bundle.class_names) >= len(self.classes):
            colors = [c if c.lower() != "#000000" else GUI_COLORS[0] for c in bundle.class_colors]
            names = list(bundle.class_names)
            if [c.name for c in self.classes] != names[: len(self.classes)] or len(names) > len(
                self.classes
            ):
                self.set_classes([ClassSpec(i + 1, n, colors[i]) for i, n in enumerate(names)])
        self.model_changed.emit(bundle)

    def dims_choice(self, layer: Image | None) -> str:
        """The volume mode chosen for ``layer``: auto (the default), 2d or 3d."""
        from napari_unet.core.io.volume import DEFAULT_DIMS

        return DEFAULT_DIMS if layer is None else self._dims.get(layer.unique_id, DEFAULT_DIMS)

    def set_dims(self, layer: Image, choice: str) -> None:
        """Choose the volume mode of ``layer`` (checked against the choices)."""
        from napari_unet.core.io.volume import DIMS_CHOICES

        if choice not in DIMS_CHOICES:
            raise ValueError(f"volume mode {choice!r} is not one of {DIMS_CHOICES}")
        if self._dims.get(layer.unique_id) != choice:
            self._dims[layer.unique_id] = choice
            self.dims_changed.emit(layer)

    def marks(self, layer: Image) -> SliceMarks:
        """Predicted and corrected slices of ``layer`` (created on first use)."""
        return self._marks.setdefault(layer.unique_id, SliceMarks())

    def current_slice(self) -> int | None:
        """Index of the slice in view for a stack, ``None`` for a 2D image."""
        from .axes import z_axis

        axis = None if self.image is None else z_axis(self.image)
        if axis is None:
            return None
        world_axis = self.viewer.dims.ndim - self.image.ndim + axis
        return int(self.viewer.dims.current_step[world_axis])


_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer: napari.Viewer) -> Session:
    """The session of ``viewer``: the dock widgets of one viewer share it."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # the viewer behind a plugin proxy
    session = _SESSIONS.get(viewer)
    if session is None:
        session = _SESSIONS[viewer] = Session(viewer)
    return session
