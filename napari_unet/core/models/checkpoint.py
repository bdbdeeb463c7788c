"""One-file model bundles: weights, architecture, classes, normalisation, history.

A bundle is saved with ``torch.save`` as a dictionary of plain Python values and
tensors, so it loads with ``torch.load(weights_only=True)``: a file crafted to run code
when unpickled is refused without running anything. Saving is atomic (a temporary file
beside the target, then ``os.replace``).
"""

from __future__ import annotations

import copy
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from napari_unet.core.errors import ModelFileError
from napari_unet.core.io.paths import atomic_write
from napari_unet.core.labels import DEFAULT_COLORS, INSTANCE_CLASSES
from napari_unet.core.models.unet import UNet, UNetConfig
from napari_unet.core.normalise import Normalisation

FORMAT = "napari-unet model"
FORMAT_VERSION = 1


def default_class_names(n_classes: int, label_kind: str = "annotation") -> list[str]:
    if label_kind == "instance" and n_classes == len(INSTANCE_CLASSES):
        return list(INSTANCE_CLASSES)
    return ["background"] + [f"class {i}" for i in range(1, n_classes)]


def default_class_colors(n_classes: int) -> list[str]:
    return [DEFAULT_COLORS[i % len(DEFAULT_COLORS)] for i in range(n_classes)]


@dataclass
class ModelBundle:
    """Everything needed to continue training or to predict, in one object."""

    config: UNetConfig
    state_dict: dict[str, torch.Tensor]
    label_kind: str = "annotation"
    class_names: list[str] = field(default_factory=list)
    class_colors: list[str] = field(default_factory=list)
    normalisation: Normalisation = field(default_factory=Normalisation)
    history: list[dict[str, Any]] = field(default_factory=list)
    iterations: int = 0
    optimizer_state: dict | None = None
    # The channels of the training images the model reads, in order (None: the images'
    # only channel, as in models saved before channels were recorded; a model of several
    # input channels that does not say reads the first ones).
    channels: tuple[int, ...] | None = None
    # The typical diameter (pixels) of the objects of the slices it was last trained on
    # (:func:`napari_unet.core.scale.training_size`); None: unknown, slices are never resized for it.
    object_size: float | None = None
    # The voxel size (z, y, x) of the volumes a 3D model was trained on, so prediction
    # rescales volumes of another voxel size to it; None: unknown (2D models, old files).
    voxel_size: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if self.channels is not None:
            self.channels = tuple(int(c) for c in self.channels)
        elif self.config.in_channels > 1:
            self.channels = tuple(range(self.config.in_channels))
        n = self.config.n_classes
        if len(self.class_names) != n:
            self.class_names = default_class_names(n, self.label_kind)
        if len(self.class_colors) != n:
            self.class_colors = default_class_colors(n)

    @property
    def n_classes(self) -> int:
        return self.config.n_classes

    @property
    def splits_instances(self) -> bool:
        """Whether the model was trained on instance masks (background / interior /
        boundary): its sure interiors seed the objects, and edits of its objects are
        taught as interior and boundary."""
        return self.label_kind == "instance" and self.n_classes == len(INSTANCE_CLASSES)

    @classmethod
    def new(cls, config: UNetConfig, label_kind: str = "annotation", seed: int = 0,
            **kwargs: Any) -> ModelBundle:
        """A freshly initialised model (seeded)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = UNet.from_config(config)
        return cls(config=config, state_dict=model.state_dict(), label_kind=label_kind, **kwargs)

    def build_model(self) -> UNet:
        model = UNet.from_config(self.config)
        model.load_state_dict(self.state_dict)
        return model

    @property
    def in_channels(self) -> int:
        return self.config.in_channels

    def with_channels(self, n_channels: int) -> ModelBundle:
        """A one-channel model reading ``n_channels`` channels: its first convolution's
        weights spread evenly over them, so it starts by seeing their mean (how the
        shipped nuclei model starts on images of several channels)."""
        if n_channels == self.config.in_channels:
            return self
        if self.config.in_channels != 1:
            raise ValueError("only a one-channel model can be widened to several channels")
        config = UNetConfig(**{**self.config.to_dict(), "in_channels": n_channels})
        state = {k: v.clone() for k, v in self.state_dict.items()}
        key = "inc.double_conv.0.weight"
        reps = (1, n_channels) + (1,) * (state[key].ndim - 2)
        state[key] = state[key].repeat(*reps) / n_channels
        return ModelBundle(config=config, state_dict=state, label_kind=self.label_kind,
                           class_names=list(self.class_names),
                           class_colors=list(self.class_colors),
                           normalisation=self.normalisation,
                           history=copy.deepcopy(self.history), iterations=self.iterations,
                           optimizer_state=None, object_size=self.object_size,
                           voxel_size=self.voxel_size)

    def with_classes(self, n_classes: int) -> ModelBundle:
        """The same model with more output classes; old classes keep their weights."""
        if n_classes <= self.n_classes:
            return self
        config = UNetConfig(**{**self.config.to_dict(), "n_classes": n_classes})
        fresh = ModelBundle.new(config, self.label_kind).state_dict
        state = {k: v.clone() for k, v in self.state_dict.items()}
        for key in ("outc.conv.weight", "outc.conv.bias"):
            new = fresh[key].clone()
            new[: self.n_classes] = state[key]
            state[key] = new
        names = self.class_names + [f"class {i}" for i in range(self.n_classes, n_classes)]
        return ModelBundle(config=config, state_dict=state, label_kind=self.label_kind,
                           class_names=names, normalisation=self.normalisation,
                           history=copy.deepcopy(self.history), iterations=self.iterations,
                           optimizer_state=None, channels=self.channels,
                           object_size=self.object_size, voxel_size=self.voxel_size)

    @property
    def dims(self) -> int:
        """2 for a model of slices, 3 for a model of volumes."""
        return self.config.dims

    def to_dict(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "architecture": self.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "label_kind": self.label_kind,
            "class_names": list(self.class_names),
            "class_colors": list(self.class_colors),
            "normalisation": self.normalisation.to_dict(),
            "history": copy.deepcopy(self.history),
            "iterations": int(self.iterations),
            "optimizer_state": self.optimizer_state,
            "channels": None if self.channels is None else list(self.channels),
            "object_size": self.object_size,
        }
        if self.voxel_size is not None:  # 2D files stay as they were
            out["voxel_size"] = [float(v) for v in self.voxel_size]
        return out

    def save(self, path: str | Path) -> None:
        save_bundle(self, path)


def save_bundle(bundle: ModelBundle, path: str | Path) -> None:
    """Write the bundle atomically: a crash mid-write leaves any previous file intact."""
    import io

    buffer = io.BytesIO()
    torch.save(bundle.to_dict(), buffer)  # in memory: a full disk is then a plain OSError

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())

    atomic_write(path, write)


def load_bundle(path: str | Path) -> ModelBundle:
    """Load a model file safely; raise :class:`ModelFileError` with a clear sentence."""
    from napari_unet.core.io.paths import special_kind

    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist")
    kind = special_kind(path)
    if kind is not None:
        raise ModelFileError(f"{path} is {kind}, not a model file")
    if path.stat().st_size == 0:
        raise ModelFileError(f"{path.name} is empty, not a napari-unet model")
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path.name} is not a napari-unet model (not a PyTorch model file), or it is "
            "truncated"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelFileError(
            f"{path.name} was refused: it is not a napari-unet model and holds Python objects "
            "that could run code when loaded; nothing in it was run"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError) as exc:
        raise ModelFileError(
            f"{path.name} is not a napari-unet model, or it is truncated or damaged "
            f"({type(exc).__name__})"
        ) from None
    return bundle_from_dict(payload, path.name)


def _check_numbers(payload: dict, name: str) -> None:
    """Refuse a damaged iteration count or normalisation before anything uses them."""
    import math

    iterations = payload.get("iterations", 0)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not (
            0 <= iterations < 2**53):
        raise ModelFileError(f"{name} is a damaged napari-unet model (iteration count "
                             f"{iterations!r})")
    norm = payload.get("normalisation", {})
    if not isinstance(norm, dict):
        raise ModelFileError(f"{name} is a damaged napari-unet model (normalisation {norm!r})")
    low, high = norm.get("low", 1.0), norm.get("high", 99.8)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                  for v in (low, high))
    if not numbers or not 0 <= low < high <= 100 or not isinstance(
            norm.get("per_slice", True), bool):
        raise ModelFileError(f"{name} is a damaged napari-unet model (normalisation "
                             f"percentiles {low!r} to {high!r})"[:300])


def _check_channels(payload: dict, config: UNetConfig, name: str) -> tuple[int, ...] | None:
    """The recorded channels: None (files from before they were recorded) or one
    distinct index from 0 per input channel of the model."""
    channels = payload.get("channels")
    if channels is None:
        return None
    if not isinstance(channels, list | tuple) or len(channels) != config.in_channels or any(
            isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < 2**16
            for c in channels) or len(set(channels)) != len(channels):
        raise ModelFileError(f"{name} is a damaged napari-unet model (channels "
                             f"{channels!r} for {config.in_channels} input channels)"[:300])
    return tuple(channels)


def _check_object_size(payload: dict, name: str) -> float | None:
    """The recorded object size: None (unknown) or a positive number of pixels."""
    import math

    size = payload.get("object_size")
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int | float) or not (
            math.isfinite(size) and 0 < size < 1e6):
        raise ModelFileError(f"{name} is a damaged napari-unet model (object size "
                             f"{size!r})"[:300])
    return float(size)


def _check_voxel_size(payload: dict, name: str) -> tuple[float, float, float] | None:
    """The recorded voxel size: None (unknown, old files) or three positive numbers."""
    import math

    size = payload.get("voxel_size")
    if size is None:
        return None
    if not isinstance(size, list | tuple) or len(size) != 3 or any(
            isinstance(v, bool) or not isinstance(v, int | float) or not (
                math.isfinite(v) and 0 < v < 1e9) for v in size):
        raise ModelFileError(f"{name} is a damaged napari-unet model (voxel size "
                             f"{size!r})"[:300])
    return (float(size[0]), float(size[1]), float(size[2]))


def _check_weights(config: UNetConfig, state: dict, name: str) -> None:
    """Refuse weights that do not fit the declared architecture before building it: the
    architecture is laid out without memory (torch's meta device), so a file that
    declares an absurdly large model costs nothing to refuse."""
    with torch.device("meta"):
        expected = UNet.from_config(config).state_dict()
    if set(state) != set(expected) or any(
            not isinstance(state[k], torch.Tensor) or tuple(state[k].shape) != tuple(v.shape)
            for k, v in expected.items()):
        n = sum(v.numel() for v in expected.values())
        raise ModelFileError(
            f"{name} is a damaged napari-unet model: its architecture (base "
            f"{config.base_channels} channels, depth {config.depth}, {n:,} parameters) does "
            "not match the weights it holds"
        )


def _check_finite(state: dict, name: str) -> None:
    """Refuse weights that hold NaN or infinity: such a model predicts background (or
    nothing) everywhere, whatever the image."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ModelFileError(
            f"{name} cannot be used: {len(bad)} of its weight tensors ({bad[0]}"
            f"{', ...' if len(bad) > 1 else ''}) hold NaN or infinite values, so it would "
            "predict nothing; train it again from an earlier model")


def bundle_from_dict(payload: Any, name: str = "the file") -> ModelBundle:
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{name} is not a napari-unet model")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name} was written by a newer napari-unet (model format {version}); this version "
            f"reads format {FORMAT_VERSION} and older: update napari-unet"
        )
    try:
        config = UNetConfig(**payload["architecture"])
        _check_numbers(payload, name)
        bundle = ModelBundle(
            config=config,
            state_dict=dict(payload["state_dict"]),
            label_kind=str(payload.get("label_kind", "annotation")),
            class_names=list(payload.get("class_names", [])),
            class_colors=list(payload.get("class_colors", [])),
            normalisation=Normalisation(**payload.get("normalisation", {})),
            history=list(payload.get("history", [])),
            iterations=int(payload.get("iterations", 0)),
            optimizer_state=payload.get("optimizer_state"),
            channels=_check_channels(payload, config, name),
            object_size=_check_object_size(payload, name),
            voxel_size=_check_voxel_size(payload, name),
        )
        _check_weights(config, bundle.state_dict, name)
        _check_finite(bundle.state_dict, name)
        UNet.from_config(config).load_state_dict(bundle.state_dict)
    except ModelFileError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ModelFileError(f"{name} is a damaged napari-unet model ({exc})"[:400]) from None
    return bundle
