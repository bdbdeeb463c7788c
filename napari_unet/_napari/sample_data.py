"""Sample data: a synthetic nuclei stack, with or without its starter annotations, and a
synthetic nuclei volume with starter strokes on three slices."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_unet.core.io.tiff import read_tiff
from napari_unet.samples import sample_path

from .layers import ANNOTATION_OPACITY

LayerData = tuple[np.ndarray, dict[str, Any], str]


def _image() -> LayerData:
    image = read_tiff(sample_path("nuclei"))
    meta = {"name": "nuclei", "scale": image.scale, "axis_labels": tuple(image.axes.lower()),
            "metadata": {"axes": image.axes}}
    return image.data, meta, "image"


def nuclei() -> list[LayerData]:
    """The 5-slice nuclei stack alone."""
    return [_image()]


def nuclei_annotated() -> list[LayerData]:
    """The nuclei stack and a few starter strokes (1 = background, 2 = nucleus)."""
    data, meta, kind = _image()
    annotations = read_tiff(sample_path("nuclei_annotations")).data
    return [
        (data, meta, kind),
        (annotations, {"name": "nuclei annotations", "scale": meta["scale"],
                       "axis_labels": meta["axis_labels"], "opacity": ANNOTATION_OPACITY},
         "labels"),
    ]


def nuclei_volume() -> list[LayerData]:
    """A synthetic z-stack of nuclei (anisotropic voxels) and starter strokes on three
    slices, generated (seeded) when opened."""
    from napari_unet.synthetic_volume import sample_volume

    sample = sample_volume()
    voxel, axes = tuple(sample["voxel_size"]), ("z", "y", "x")
    return [
        (sample["image"], {"name": "nuclei volume", "scale": voxel, "axis_labels": axes,
                           "metadata": {"axes": "ZYX"}}, "image"),
        (sample["annotations"], {"name": "nuclei volume annotations", "scale": voxel,
                                 "axis_labels": axes, "opacity": ANNOTATION_OPACITY},
         "labels"),
    ]
