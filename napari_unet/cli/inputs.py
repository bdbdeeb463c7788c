"""Reading what the commands are given: images, label images and model files."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_unet.core.channels import format_channels, pick_channels
from napari_unet.core.errors import InputError, NapariUnetError


def _read(path: Path, args: argparse.Namespace, labels: bool = False):
    """Read ``path`` with ``--series``; a labels file uses it only when it has several."""
    from napari_unet.core.io import read_tiff, tiff_series_count

    series = getattr(args, "series", None)
    if labels and series is not None and tiff_series_count(path) == 1:
        series = None
    return read_tiff(path, series=series)


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


def _select(image, channels: tuple[int, ...] | None = None, what: str = "image",
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
        raise NapariUnetError(
            f"{name} has {data.ndim} dimensions (axes {axes}, shape {data.shape}); napari-unet "
            f"works on a 2D {what} or a Z stack of 2D slices, with channels for images: save "
            "one time point or position as a TIFF first"
        )
    kind = (None if ci is None else {3: "an RGB image", 4: "an RGBA image"}.get(n)
            if axes[ci] == "S" else None) or f"an image of {n} channels"
    if what != "image" and n > 1:
        raise NapariUnetError(f"{name} is {kind} (axes {image.axes}, shape "
                              f"{image.data.shape}); a {what} has one channel")
    if channels is not None:
        for c in channels:
            if not 0 <= c < n:
                have = "one channel" if n == 1 else f"channels 0 to {n - 1}"
                lead = (f"{flag} {c}" if len(channels) == 1
                        else f"channel {c} of {_flag_text(flag, channels)}")
                raise NapariUnetError(f"{lead} does not exist: {name} has {have}")
    elif model is not None:
        channels = model.channels
        if channels is None and n > 1:
            raise NapariUnetError(
                f"{name} is {kind} (axes {image.axes}, shape {image.data.shape}) but the "
                f"model reads one channel: choose it with --channels N (0 to {n - 1})")
        if channels is not None and max(channels) >= n:
            have = "one channel" if n == 1 else f"channels 0 to {n - 1}"
            k = len(channels)
            reads = "one channel" if k == 1 else f"{k} channels"
            raise NapariUnetError(
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
        raise NapariUnetError(f"{name} has shape {data.shape}; use a 2D {what} or a Z stack")
    try:
        core = pick_channels(data, ci, channels, name)
    except InputError as exc:
        raise NapariUnetError(str(exc)) from None
    if channels is None and n > 1:
        channels = tuple(range(n))
    return Selected(core, tuple(shape), tuple(spatial_scale), channels, image.path)


def _load_pairs(args: argparse.Namespace):
    """Images and their label images, as read and checked (one channel, same shapes)."""
    if len(args.image) != len(args.labels):
        raise NapariUnetError(
            f"{len(args.image)} --image but {len(args.labels)} --labels: give one labels file "
            "per image, in the same order"
        )
    images, labels, chosen = [], [], set()
    for ip, lp in zip(args.image, args.labels):
        sel = _select(_read(ip, args), args.channels, flag=args.channels_flag)
        img = sel.data
        lab = _select(_read(lp, args, labels=True), None, "label image").data
        shape = sel.shape
        if shape != lab.shape and shape[-2:] == lab.shape[-2:] and (
                int(np.prod(shape)) == lab.size):  # one slice: 2D in one file, 3D in the other
            lab = lab.reshape(shape)
        if shape != lab.shape:
            raise NapariUnetError(
                f"{lp.name} has shape {lab.shape} but {ip.name} has shape {shape}"
                + (f" (with {len(sel.channels)} channels)" if img.ndim == 4 else "")
                + "; they must match"
            )
        chosen.add(sel.channels)
        images.append(img)
        labels.append(lab)
    if len(chosen) > 1:
        raise NapariUnetError("the images have different numbers of channels: choose the "
                              "same channels of each with --channels")
    args.recorded_channels = chosen.pop()
    return images, labels


def _load_model(path: Path):
    """A model file, or a sentence. A ``.zip`` is read as a bioimage.io package that
    napari-unet exported."""
    from napari_unet.core.checkpoint import load_bundle

    if path.suffix.lower() == ".zip":
        from napari_unet.core.export import load_package

        bundle = load_package(path)
    else:
        bundle = load_bundle(path)
    return bundle
