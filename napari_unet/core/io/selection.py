"""Which channels of an image read from a file to use: those chosen (``--channels``),
else the ones a model was trained on, else all of them, as :class:`Selected` in the
core's form (:mod:`.channels`). The command line and the GUI's folder prediction both
read files through here (:class:`ChannelReader`), so a model reads the same channels
of a file everywhere. Only numpy and the readers here: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.channels import format_channels, pick_channels


@dataclass
class Selected:
    """An image as the commands use it: ``data`` in the core's form (2D, ZYX, or ZCYX
    with several channels), ``shape`` and ``scale`` of its labels, and ``channels``, the
    channels of the file it holds (None: the file's only channel)."""

    data: np.ndarray
    shape: tuple[int, ...]
    scale: tuple[float, ...]
    channels: tuple[int, ...] | None
    path: Path | None = None


def _channel_axis(data, axes: str) -> int | None:
    """The file's channel axis: ``C``, or samples last (RGB); tifffile reads planar
    stacks of three slices as "SYX": those stay slices, as in the napari reader."""
    if "C" in axes:
        return axes.index("C")
    if axes.endswith("S"):
        return len(axes) - 1
    return None


def _flag_text(flag: str, channels) -> str:
    return f"{flag} {format_channels(channels)}"


def select_channels(image, channels: tuple[int, ...] | None = None, what: str = "image",
                    flag: str = "--channels", model=None) -> Selected:
    """The channels of ``image`` to use, or a sentence saying what to do.

    ``channels`` chosen on the command line (given as ``flag``) win; else a ``model``'s
    own channels (those it was trained on); else, for training, all of them. A label
    image must have one channel. Axes of length one are dropped; a time series or any
    other fifth axis is refused.
    """
    data, axes = image.data, image.axes
    scale = list(image.scale) if len(image.scale) == data.ndim else [1.0] * data.ndim
    if len(axes) != data.ndim:
        axes = "Q" * (data.ndim - 2) + "YX"
    name = image.path.name if image.path is not None else "the image"
    ci = _channel_axis(data, axes)
    n = 1 if ci is None else data.shape[ci]
    if ci is not None and n == 1:  # one channel: not a channel axis
        data, axes, scale = np.take(data, 0, axis=ci), axes[:ci] + axes[ci + 1 :], (
            scale[:ci] + scale[ci + 1 :])
        ci = None
    if ci is not None and ci == data.ndim - 1:  # samples last (RGB): channels before Y, X
        data, axes = np.moveaxis(data, ci, -3), axes[:ci - 2] + "S" + axes[ci - 2 : ci]
        scale = scale[: ci - 2] + [1.0] + scale[ci - 2 : ci]
        ci = data.ndim - 3
    others = [i for i in range(data.ndim - 2) if i != ci]
    if sum(data.shape[i] > 1 for i in others) > 1:
        raise InputError(
            f"{name} has {data.ndim} dimensions (axes {axes}, shape {data.shape}); napari-unet "
            f"works on a 2D {what} or a Z stack of 2D slices, with channels for images: save "
            "one time point or position as a TIFF first"
        )
    kind = (None if ci is None else {3: "an RGB image", 4: "an RGBA image"}.get(n)
            if axes[ci] == "S" else None) or f"an image of {n} channels"
    if what != "image" and n > 1:
        raise InputError(f"{name} is {kind} (axes {image.axes}, shape "
                              f"{image.data.shape}); a {what} has one channel")
    if channels is not None:
        for c in channels:
            if not 0 <= c < n:
                have = "one channel" if n == 1 else f"channels 0 to {n - 1}"
                lead = (f"{flag} {c}" if len(channels) == 1
                        else f"channel {c} of {_flag_text(flag, channels)}")
                raise InputError(f"{lead} does not exist: {name} has {have}")
    elif model is not None:
        channels = model.channels
        if channels is None and n > 1:
            raise InputError(
                f"{name} is {kind} (axes {image.axes}, shape {image.data.shape}) but the "
                f"model reads one channel: choose it with --channels N (0 to {n - 1})")
        if channels is not None and max(channels) >= n:
            have = "one channel" if n == 1 else f"channels 0 to {n - 1}"
            k = len(channels)
            reads = "one channel" if k == 1 else f"{k} channels"
            raise InputError(
                f"the model reads {reads} (channel{'s' if k > 1 else ''} "
                f"{format_channels(channels)} of its training images) but {name} has {have}: "
                f"choose {'one' if k == 1 else k} of its channels with --channels")
    # Axes of length one (but a slice) go: what remains is Z, Y, X and the channels.
    while data.ndim - (ci is not None) > 3:
        drop = next((i for i in others if data.shape[i] == 1), None)
        if drop is None:  # pragma: no cover - refused above
            break
        data, axes = np.take(data, 0, axis=drop), axes[:drop] + axes[drop + 1 :]
        scale = scale[:drop] + scale[drop + 1 :]
        ci = None if ci is None else ci - (drop < ci)
        others = [i for i in range(data.ndim - 2) if i != ci]
    if ci is None:
        shape, spatial_scale = data.shape, scale
    else:
        shape = data.shape[:ci] + data.shape[ci + 1 :]
        spatial_scale = scale[:ci] + scale[ci + 1 :]
    if len(shape) not in (2, 3):  # pragma: no cover - refused above
        raise InputError(f"{name} has shape {data.shape}; use a 2D {what} or a Z stack")
    core = pick_channels(data, ci, channels, name)
    if channels is None and n > 1:
        channels = tuple(range(n))
    return Selected(core, tuple(shape), tuple(spatial_scale), channels, image.path)


def select_for_model(image, channels: tuple[int, ...] | None, flag: str = "--channels",
                     model_channels: tuple[int, ...] | None = None) -> Selected:
    """:func:`select_channels` for a model trained on ``model_channels``; module-level, so
    that a :class:`~.lazy.LazySource` holding it pickles."""
    return select_channels(image, channels, flag=flag,
                           model=SimpleNamespace(channels=model_channels))


class ChannelReader:
    """Reads one image file for a model: with ``series`` (TIFF only), the chosen
    ``channels`` (written as ``flag`` in messages) or else the model's
    (``model_channels``), through :func:`select_channels`; picklable, so that the workers
    of a cluster read their own files. Returns a :class:`Selected`."""

    def __init__(self, series: int | None = None, channels: tuple[int, ...] | None = None,
                 flag: str = "--channels", model_channels: tuple[int, ...] | None = None):
        self.series, self.channels, self.flag = series, channels, flag
        self.model_channels = model_channels

    def __call__(self, path: Path) -> Selected:
        from napari_unet.core.io.lazy import open_image
        from napari_unet.core.io.tiff import is_tiff_path

        path = Path(path)
        series = self.series if is_tiff_path(path) else None
        image = open_image(path, lazy=False, series=series)
        return select_for_model(image, self.channels, self.flag, self.model_channels)
