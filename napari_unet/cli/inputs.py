"""Reading what the commands are given: images, label images and model files."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_unet.core.errors import NapariUnetError


def _read(path: Path, args: argparse.Namespace, labels: bool = False,
          lazy: bool | None = False):
    """Read ``path`` (a TIFF or an OME-Zarr folder) with ``--series``; a labels file uses
    it only when it has several. ``lazy=None`` opens an image that does not fit
    comfortably in memory as a dask array (:func:`~napari_unet.core.lazy.open_image`)."""
    from napari_unet.core.io import is_tiff_path, tiff_series_count
    from napari_unet.core.lazy import open_image

    series = getattr(args, "series", None)
    if series is not None and not is_tiff_path(path):
        series = None
    if labels and series is not None and tiff_series_count(path) == 1:
        series = None
    return open_image(path, lazy=lazy, series=series)


def _one_channel(image, channel: int | None = None, what: str = "image"):
    """The image as 2D or a Z stack of one channel, or a sentence saying what to do.

    An RGB(A) or multi-channel image needs ``--channel``; axes of length one are dropped;
    a time series or any other fifth axis is refused.
    """
    import dataclasses

    import numpy as np

    data, axes = image.data, image.axes
    scale = list(image.scale) if len(image.scale) == data.ndim else [1.0] * data.ndim
    if len(axes) != data.ndim:
        axes = "Q" * (data.ndim - 2) + "YX"
    name = image.path.name if image.path is not None else "the image"
    has_channels = ("C" in axes and data.shape[axes.index("C")] > 1) or (
        axes.endswith("S") and data.shape[-1] > 1)
    if sum(n > 1 for n in data.shape[:-2]) - has_channels > 1:
        raise NapariUnetError(
            f"{name} has {data.ndim} dimensions (axes {axes}, shape {data.shape}); napari-unet "
            f"works on a 2D {what} or a Z stack of 2D slices with one channel: save one time "
            "point or position as a TIFF first"
        )
    for ax in "SC":
        # Samples count as channels when last (RGB); tifffile reads planar stacks of
        # three slices as "SYX": those stay slices, as in the napari reader.
        if ax not in axes or (ax == "S" and not axes.endswith("S")):
            continue
        i = axes.index(ax)
        n = data.shape[i]
        if n > 1 and channel is None:
            kind = {3: "an RGB image", 4: "an RGBA image"}.get(n) if ax == "S" else None
            kind = kind or f"an image of {n} channels"
            raise NapariUnetError(
                f"{name} is {kind} (axes {axes}, shape {data.shape}); napari-unet works on "
                f"one channel: choose one with --channel 0 to {n - 1}"
            )
        if channel is not None and not 0 <= channel < n:
            raise NapariUnetError(
                f"--channel {channel} does not exist: {name} has channels 0 to {n - 1}"
            )
        data = np.take(data, channel or 0, axis=i)
        axes, scale = axes[:i] + axes[i + 1 :], scale[:i] + scale[i + 1 :]
        break
    else:
        if channel not in (None, 0):
            raise NapariUnetError(f"--channel {channel} does not exist: {name} has one channel")
    while data.ndim > 3 and 1 in data.shape[:-2]:
        i = data.shape[:-2].index(1)
        data = np.take(data, 0, axis=i)
        axes, scale = axes[:i] + axes[i + 1 :], scale[:i] + scale[i + 1 :]
    if data.ndim not in (2, 3):  # pragma: no cover - refused above
        raise NapariUnetError(f"{name} has shape {data.shape}; use a 2D {what} or a Z stack")
    return dataclasses.replace(image, data=data, axes=axes, scale=tuple(scale))


def _load_pairs(args: argparse.Namespace):
    """Images and their label images, as read and checked (one channel, same shapes)."""
    if len(args.image) != len(args.labels):
        raise NapariUnetError(
            f"{len(args.image)} --image but {len(args.labels)} --labels: give one labels file "
            "per image, in the same order"
        )
    images, labels = [], []
    for ip, lp in zip(args.image, args.labels):
        img = _one_channel(_read(ip, args, lazy=None), args.channel).data
        lab = _one_channel(_read(lp, args, labels=True, lazy=None), None, "label image").data
        if img.shape != lab.shape and img.shape[-2:] == lab.shape[-2:] and (
                img.size == lab.size):  # one slice, saved as 2D in one file, 3D in the other
            img, lab = img.reshape(img.shape[-2:]), lab.reshape(lab.shape[-2:])
        if img.shape != lab.shape:
            raise NapariUnetError(
                f"{lp.name} has shape {lab.shape} but {ip.name} has shape {img.shape}; "
                "they must match"
            )
        images.append(img)
        labels.append(lab)
    return images, labels


def _load_model(path: Path):
    """A model file for one-channel images (every napari-unet model), or a sentence. A
    ``.zip`` is read as a bioimage.io package that napari-unet exported."""
    from napari_unet.core.checkpoint import load_bundle

    if path.suffix.lower() == ".zip":
        from napari_unet.core.export import load_package

        bundle = load_package(path)
    else:
        bundle = load_bundle(path)
    if bundle.config.in_channels != 1:
        raise NapariUnetError(
            f"{path.name} expects images with {bundle.config.in_channels} channels; "
            "napari-unet works on one channel"
        )
    return bundle


def _source(path: Path, args: argparse.Namespace):
    """The image at ``path`` for a block prediction: a picklable
    :class:`~napari_unet.core.lazy.LazySource` (``--series``, ``--channel`` as
    :func:`_read` and :func:`_one_channel` take them), so that the workers of a cluster
    open it themselves, and the image it opens here, lazily (checked, pixels not read)."""
    from napari_unet.core.io import is_tiff_path
    from napari_unet.core.lazy import LazySource

    series = getattr(args, "series", None)
    source = LazySource(str(path), series if is_tiff_path(path) else None, _one_channel,
                        (getattr(args, "channel", None),))
    return source, source.image()
