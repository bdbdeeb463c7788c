"""Reader: TIFF stacks (and OME-TIFF) and OME-Zarr folders as one image layer, label
images as Labels; a file of several series gives one layer per series. An image that
does not fit comfortably in memory comes as a dask array, which napari shows slice by
slice without loading it (:func:`napari_unet.core.io.lazy.open_image`).

Labels or image is decided from the file's metadata and its values
(:func:`napari_unet.core.io.label_images.looks_like_labels`), never from its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.io.label_images import as_label_dtype, looks_like_labels
from napari_unet.core.io.lazy import is_image_path, is_lazy, is_zarr_path, open_image
from napari_unet.core.io.tiff import (
    ImageData,
    tiff_series_count,
)
from napari_unet.core.normalise import Normalisation, sample_chunks, thinned

LayerData = tuple[np.ndarray, dict[str, Any], str]
PathLike = str | Path


def get_reader(path: PathLike | Sequence[PathLike]) -> Callable[..., list[LayerData]] | None:
    """Return :func:`read_layers` when every path is a TIFF or a zarr folder, else ``None``."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    if not paths or not all(is_image_path(p) for p in paths):
        return None
    return read_layers


def read_layers(path: PathLike | Sequence[PathLike]) -> list[LayerData]:
    """Read one or more TIFF files or OME-Zarr folders into napari layer data tuples."""
    paths = [path] if isinstance(path, str | Path) else list(path)
    layers = []
    for p in paths:
        n = 1 if is_zarr_path(p) else tiff_series_count(p)
        if n == 1:
            layers.append(layer_data(_open_warning_of_missing_chunks(p)))
            continue
        for i in range(n):  # a file of several images: one layer each, named so
            data, meta, kind = layer_data(open_image(p, series=i))
            names = meta["name"] if isinstance(meta["name"], list) else [meta["name"]]
            names = [f"{name} [series {i}]" for name in names]
            meta["name"] = names if isinstance(meta["name"], list) else names[0]
            layers.append((data, meta, kind))
    return layers


def _open_warning_of_missing_chunks(path: PathLike) -> ImageData:
    """:func:`open_image`; an OME-Zarr image with missing chunks opens with them shown as
    its fill value, and a warning notification says how many are missing."""
    from napari_unet.core.io.declared import MissingChunksError

    try:
        return open_image(path)
    except MissingChunksError as exc:
        from napari.utils.notifications import show_warning

        show_warning(f"{exc.finding}; they are shown as 0: the copy may be incomplete")
        return open_image(path, missing_chunks="fill")


def layer_data(image: ImageData) -> LayerData:
    """One layer data tuple: Labels for label images, Image (split by channel) otherwise."""
    data, axes = image.data, named_axes(image.axes)
    scale = list(image.scale or [1.0] * image.data.ndim)
    meta: dict[str, Any] = {"name": image.name, "metadata": {"axes": axes}}
    if image.path is not None:
        meta["metadata"]["path"] = str(image.path)
    if looks_like_labels(_sample(data), image.labels_hint):
        if not is_lazy(data):
            data = as_label_dtype(data)
        meta.update(scale=scale, axis_labels=tuple(axes))
        return data, meta, "labels"
    labels = list(axes)
    if "S" in axes and axes.index("S") == data.ndim - 1 and data.shape[-1] in (3, 4):
        meta["rgb"] = True
        scale.pop()
        labels.pop()
    elif "C" in axes and data.shape[axes.index("C")] > 1:
        channel = axes.index("C")
        meta["channel_axis"] = channel
        meta["name"] = [f"{image.name} [{i}]" for i in range(data.shape[channel])]
        # Each layer notes its channel in the file: a model trained on them records it.
        meta["metadata"] = [{**meta["metadata"], "channel": i}
                            for i in range(data.shape[channel])]
        scale.pop(channel)
        labels.pop(channel)
    if not meta.get("rgb"):
        limits = display_range(data, meta.get("channel_axis"))
        if limits is not None:
            meta["contrast_limits"] = limits
    meta.update(scale=scale, axis_labels=tuple(labels))
    return data, meta, "image"


def display_range(data, channel_axis: int | None = None):
    """The contrast limits an image opens with: the percentiles that the model's
    normalisation maps to 0 and 1 (:class:`~napari_unet.core.normalise.Normalisation`),
    over the whole stack, so that what the user sees is what the model is given. napari
    would take the minimum and the maximum, and a few bright voxels then leave a z-stack
    nearly black. One ``[low, high]`` per channel with ``channel_axis``; ``None`` where
    napari's own range is the better choice (no finite value, a flat image, not a
    number)."""
    if np.dtype(data.dtype).kind not in "buif":
        return None
    if channel_axis is not None:
        parts = [display_range(data[(slice(None),) * channel_axis + (i,)])
                 for i in range(data.shape[channel_axis])]
        return None if any(p is None for p in parts) else parts
    norm = Normalisation()
    sample = thinned(sample_chunks(data) if is_lazy(data) else data)
    if sample is None:
        return None
    low, high = (float(v) for v in np.percentile(sample, [norm.low, norm.high]))
    return [low, high] if high > low else None


def _sample(data) -> np.ndarray:
    """``data`` itself, or for a lazy array one of its chunks (from the middle) that tells
    whether it holds labels without reading it all."""
    if not is_lazy(data):
        return data
    block = data.blocks[tuple(n // 2 for n in data.numblocks)]
    return np.asarray(block)


def named_axes(axes: str) -> str:
    """Axes with the ones a plain TIFF leaves unnamed (tifffile's ``Q``, ``I``: a stack of
    pages) called ``Z``, then ``T``, where those names are free."""
    out = list(axes.upper())
    free = [a for a in "ZT" if a not in out]
    for i, a in enumerate(out):
        if a in "QI" and free:
            out[i] = free.pop(0)
    return "".join(out)
