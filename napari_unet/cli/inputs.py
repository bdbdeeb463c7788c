"""Reading what the commands are given: images, label images and model files."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from napari_unet.core.errors import NapariUnetError
from napari_unet.core.io.selection import Selected, select_channels


def _read(path: Path, args: argparse.Namespace, labels: bool = False,
          lazy: bool | None = False):
    """Read ``path`` (a TIFF or an OME-Zarr folder) with ``--series``; a labels file uses
    it only when it has several. ``lazy=None`` opens an image that does not fit
    comfortably in memory as a dask array (:func:`~napari_unet.core.io.lazy.open_image`)."""
    from napari_unet.core.io.lazy import open_image
    from napari_unet.core.io.tiff import is_tiff_path, tiff_series_count

    series = getattr(args, "series", None)
    if series is not None and not is_tiff_path(path):
        series = None
    if labels and series is not None and tiff_series_count(path) == 1:
        series = None
    missing = "fill" if labels else getattr(args, "missing_chunks", "refuse")
    return open_image(path, lazy=lazy, series=series, missing_chunks=missing)


def _select(image, channels: tuple[int, ...] | None = None, what: str = "image",
            flag: str = "--channels", model=None) -> Selected:
    """:func:`~napari_unet.core.io.selection.select_channels` (the GUI's folder prediction
    uses it too); an image without one finite value is refused (NaN and infinity read as
    the image's darkest value: all of them would give an empty prediction without a word)."""
    from napari_unet.core.normalise import has_finite

    selected = select_channels(image, channels, what, flag, model)
    if what == "image" and not has_finite(selected.data):
        name = Path(getattr(image, "path", None) or "the image").name
        raise NapariUnetError(f"{name} has no finite values (every pixel is NaN or "
                              "infinite): there is nothing in it to train on or predict")
    return selected


def _load_pairs(args: argparse.Namespace):
    """Images and their label images, as read and checked (one channel, same shapes)."""
    if len(args.image) != len(args.labels):
        raise NapariUnetError(
            f"{len(args.image)} --image but {len(args.labels)} --labels: give one labels file "
            "per image, in the same order"
        )
    images, labels, chosen, scales = [], [], set(), []
    for ip, lp in zip(args.image, args.labels):
        sel = _select(_read(ip, args, lazy=None), args.channels, flag=args.channels_flag)
        img = sel.data
        lab = _select(_read(lp, args, labels=True, lazy=None), None, "label image").data
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
        scales.append(tuple(sel.scale))
        images.append(img)
        labels.append(lab)
    if len(chosen) > 1:
        raise NapariUnetError("the images have different numbers of channels: choose the "
                              "same channels of each with --channels")
    args.recorded_channels = chosen.pop()
    args.image_scales = scales  # the images' pixel or voxel sizes, for volumes
    return images, labels


def _load_model(path: Path):
    """A model file, or a sentence. A ``.zip`` is read as a bioimage.io package that
    napari-unet exported."""
    from napari_unet.core.models.checkpoint import load_bundle

    if path.suffix.lower() == ".zip":
        from napari_unet.core.share.package import load_package

        bundle = load_package(path)
    else:
        bundle = load_bundle(path)
    return bundle
