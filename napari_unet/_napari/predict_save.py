"""Saving the predictions of an image as a TIFF: its classes, or its objects."""

from __future__ import annotations

from pathlib import Path

import napari
import numpy as np
from napari.utils.notifications import show_error, show_info, show_warning

from .folder_predict import image_folder
from .layers import find_labels, image_shape, is_lazy_layer, predictions_name


def save_predictions(viewer: napari.viewer.Viewer, image, path: str | Path,
                     instances: bool, min_size: int) -> bool:
    """Save the predictions of ``image`` as a compressed TIFF at ``path``: one label per
    object with ``instances`` (its instances layer, else the classes split into objects
    of at least ``min_size`` pixels), else one per class. Says what
    happened in a notification; returns whether it saved."""
    from napari_unet.core.io.lazy import is_lazy
    from napari_unet.core.io.paths import check_outputs
    from napari_unet.core.io.tiff import write_tiff

    layer = None if image is None else find_labels(
        viewer, predictions_name(image), image_shape(image))
    if layer is None:
        show_warning("There are no predictions to save yet: press Predict first.")
        return False
    lazy = is_lazy_layer(layer)
    data = layer.data if lazy else np.asarray(layer.data)
    if instances:
        data = _objects(viewer, image, data, min_size)
    try:
        source = image.source.path or image.metadata.get("path")
        check_outputs([("the labels file", path)], [("image", source)])
        if is_lazy_layer(image) or is_lazy(data):
            from napari_unet.core.io.sparse import write_labels_tiff

            write_labels_tiff(path, data, scale=tuple(layer.scale))  # plane by plane
        else:
            write_tiff(path, data, scale=tuple(layer.scale), labels=True)
    except Exception as exc:  # an input, a protected file, a full disk...
        show_error(f"Could not save the labels to {path}: {exc}")
        return False
    show_info(f"{'Objects' if instances else 'Labels'} saved to {path}")
    return True


def default_labels_path(image) -> Path:
    """``<image>_labels.tif`` beside the image's file (or in the current folder)."""
    name = f"{image.name if image is not None else 'image'}_labels.tif"
    folder = image_folder(image)
    return folder / name if folder is not None else Path(name)


def _objects(viewer: napari.viewer.Viewer, image, predictions, min_size: int):
    """The instances layer of ``image`` if there is one, else the predictions split
    into objects of at least ``min_size`` pixels (:func:`~napari_unet.core.predict.objects.split_into_objects`)."""
    from napari_unet.core.predict.objects import split_into_objects

    name = f"{image.name} instances"
    if name in viewer.layers and np.shape(viewer.layers[name].data) == np.shape(predictions):
        layer = viewer.layers[name]
        return layer.data if is_lazy_layer(layer) else np.asarray(layer.data)
    return split_into_objects(predictions, min_size)
