"""Channels of an image: which ones a model reads, picking them, checking them.

The core's image convention: one channel is a 2D image (Y, X) or a stack (Z, Y, X);
several channels are always four axes (Z, C, Y, X), a 2D image being one slice
(1, C, Y, X), so that a stack of slices is never taken for channels or the reverse.
:func:`pick_channels` turns an array with a channel axis anywhere (a TIFF's ``C``, an
RGB image's samples, a napari layer's axis) into that form; the command line and the GUI
both use it. An image opened lazily (a dask or zarr array too large to hold) gives one
of its channels lazily; several channels of such an image are refused
(:data:`LAZY_CHANNELS`) rather than read whole. Only numpy (and dask for lazy images)
here: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import is_lazy

#: The sentence refusing several channels of an image opened lazily (``name``, ``n``).
LAZY_CHANNELS = ("{name} is too large to hold in memory and has {n} channels: napari-unet "
                 "reads several channels only from images that fit in memory, so choose one "
                 "channel (or save the channels to use as a smaller image)")


def parse_channels(text: str) -> tuple[int, ...]:
    """``"0,2"`` -> ``(0, 2)``: channel indices from 0, each once, in the order given.
    Raises :class:`InputError` with a sentence for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    if not text.strip() or any(not p for p in parts):
        raise InputError(f"{text!r} is not a list of channels: give indices from 0 "
                         "separated by commas, such as 0,2")
    out = []
    for p in parts:
        if not p.lstrip("+").isdigit():
            raise InputError(f"{p!r} is not a channel index: channels are numbered from 0, "
                             "such as 0,2")
        out.append(int(p))
    if len(set(out)) != len(out):
        raise InputError(f"channel {next(c for c in out if out.count(c) > 1)} is given twice "
                         f"in {text!r}; name each channel once")
    return tuple(out)


def format_channels(channels: Sequence[int]) -> str:
    return ",".join(str(c) for c in channels)


def check_indices(channels: Sequence[int], n: int, name: str = "the image") -> None:
    """Refuse indices that ``n`` channels do not have, with a sentence."""
    for c in channels:
        if not 0 <= c < n:
            have = "one channel (0)" if n == 1 else f"channels 0 to {n - 1}"
            raise InputError(f"channel {c} does not exist: {name} has {have}")


def pick_channels(data: np.ndarray, axis: int | None, channels: Sequence[int] | None,
                  name: str = "the image") -> np.ndarray:
    """The chosen ``channels`` of ``data`` along ``axis`` in the core's form.

    ``axis`` None: ``data`` has one channel (only ``(0,)`` or None may be chosen).
    ``channels`` None: all of them. One channel chosen gives the array without the
    channel axis; several give (Z, C, Y, X), with Z = 1 when ``data`` has no other axis
    than the channel and Y, X. A lazy ``data`` stays lazy (dask): one channel is picked
    without reading anything; several are refused (:data:`LAZY_CHANNELS`).
    """
    lazy = is_lazy(data)
    if not lazy:
        data = np.asarray(data)
    if axis is None:
        if channels is not None:
            check_indices(channels, 1, name)
            if len(channels) != 1:
                raise InputError(f"{name} has one channel; choose one channel (0)")
        return data
    axis = axis % data.ndim
    if axis >= data.ndim - 2:
        raise InputError(f"axis {axis} of {name} cannot be its channels: the last two axes "
                         "are Y and X")
    n = data.shape[axis]
    chosen = tuple(range(n)) if channels is None else tuple(channels)
    if not chosen:
        raise InputError(f"no channel of {name} is chosen; choose at least one")
    check_indices(chosen, n, name)
    if lazy:
        if len(chosen) > 1:
            raise InputError(LAZY_CHANNELS.format(name=name, n=n))
        if not hasattr(data, "dask"):  # zarr or another lazy array: index it through dask
            import dask.array as da

            data = da.from_array(data, chunks=getattr(data, "chunks", "auto"))
        return data[(slice(None),) * axis + (chosen[0],)]
    if len(chosen) == 1:
        return np.take(data, chosen[0], axis=axis)
    picked = np.take(data, list(chosen), axis=axis) if chosen != tuple(range(n)) else data
    picked = np.moveaxis(picked, axis, -3)
    if picked.ndim == 3:
        return picked[np.newaxis]
    if picked.ndim != 4:
        raise InputError(f"{name} with channels has shape {data.shape}; use a 2D image or "
                         "a Z stack of 2D slices with channels")
    return picked


def n_channels(image: np.ndarray) -> int:
    """Channels of an image in the core's form: C of (Z, C, Y, X), else 1."""
    return int(np.shape(image)[1]) if np.ndim(image) == 4 else 1


def stack_channels(planes: Sequence[np.ndarray]) -> np.ndarray:
    """Single-channel images of one shape (2D or Z stacks, e.g. napari layers split by
    channel) as one image in the core's form; one image stays as it is."""
    if len(planes) == 1:
        return planes[0] if is_lazy(planes[0]) else np.asarray(planes[0])
    if any(is_lazy(p) for p in planes):
        raise InputError(LAZY_CHANNELS.format(name="the image", n=len(planes)))
    planes = [np.asarray(p) for p in planes]
    shapes = {p.shape for p in planes}
    if len(shapes) != 1:
        raise InputError("the channels have different shapes "
                         f"({', '.join(str(s) for s in sorted(shapes))}); they must match")
    stacked = np.stack(planes, axis=-3)
    return stacked[np.newaxis] if stacked.ndim == 3 else stacked


def as_model_input(image: np.ndarray, in_channels: int,
                   channels: Sequence[int] | None = None) -> np.ndarray:
    """``image`` as (Z, C, Y, X) for a model of ``in_channels`` channels, or a sentence
    saying why it does not fit (``channels``: the channels the model was trained on,
    for the message)."""
    image = np.asarray(image)
    if image.ndim not in (2, 3, 4) or image.size == 0:
        raise InputError(f"cannot use an image of shape {image.shape}: use a 2D image or a "
                         "stack of 2D slices, with its channels as (Z, C, Y, X)")
    have = n_channels(image)
    if have != in_channels:
        which = (f" (channels {format_channels(channels)} of its training images)"
                 if channels and in_channels > 1 else "")
        raise InputError(
            f"the model reads {in_channels} channel{'s' if in_channels > 1 else ''}{which} "
            f"but the image has {have}: choose {in_channels} channel"
            f"{'s' if in_channels > 1 else ''} of the image")
    if image.ndim == 4:
        return image
    return (image[np.newaxis] if image.ndim == 2 else image)[:, np.newaxis]
