"""Label conventions and conversions (DESIGN.md), kept everywhere:

* annotations (sparse): 0 = not annotated (ignored by the loss), 1 = background,
  2..K = foreground classes;
* model classes and predictions: 0 = background, 1..K-1 = foreground, so
  ``annotation = prediction + 1``;
* dense label images from files are turned into annotations by :func:`to_annotations`.

Training targets are model classes with ``IGNORE`` (-1) where nothing is annotated. Also
the U-Net paper's border weights between objects, and the (Z, Y, X) stack every image
and label image is seen as. Only numpy and scipy here: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from napari_unet.core.config import LABELS_KINDS, LabelsKind
from napari_unet.core.errors import InputError

IGNORE = -1
#: Class names of a model trained on instance masks.
INSTANCE_CLASSES = ("background", "nucleus", "boundary")
#: napari-like default colours for classes (background first).
DEFAULT_COLORS = (
    "#000000", "#ff7f0e", "#1f77b4", "#2ca02c", "#d62728",
    "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
)


def as_stack(array: np.ndarray, what: str = "image") -> np.ndarray:
    """View a 2D image as a stack of one slice; accept (Z, Y, X) as it is."""
    array = np.asarray(array)
    if array.ndim == 2:
        return array[np.newaxis]
    if array.ndim == 3:
        return array
    raise InputError(
        f"the {what} has {array.ndim} dimensions (shape {array.shape}); napari-unet "
        "trains on 2D images or stacks of 2D slices (Z, Y, X) with one channel"
    )


def check_labels_array(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    """Integer labels without negative values (whole-valued floats are accepted)."""
    labels = np.asarray(labels)
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating):
            raise InputError(f"the {what} have type {labels.dtype}; integer labels are needed")
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InputError(f"the {what} are stored as floats with fractional or NaN values")
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InputError(f"the {what} contain negative values (min {labels.min()})")
    return labels


#: The types of written labels, smallest first (:func:`labels_dtype`).
LABEL_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)


def labels_dtype(max_id: int | None, instances: bool = False) -> np.dtype:
    """The type of labels written anywhere (TIFF, OME-Zarr, napari's writer, the command
    line): the smallest unsigned integer type that holds ``max_id``, the largest label.

    Objects not counted yet (``max_id`` None with ``instances``: an OME-Zarr or a slice
    by slice prediction creates its array before the last object is numbered) get
    uint32, room for four billion objects. Negative labels are refused
    (:class:`InputError`).
    """
    if max_id is None:
        if not instances:
            raise ValueError("the largest class of labels is always known")
        return np.dtype(np.uint32)
    max_id = int(max_id)
    if max_id < 0:
        raise InputError(f"labels with negative values (down to {max_id}) cannot be saved; "
                         "relabel them from 0")
    for dtype in LABEL_DTYPES:
        if max_id <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise InputError(f"label {max_id} is larger than any integer type holds")


def instance_to_classes(instances: np.ndarray) -> np.ndarray:
    """Instance mask (0 = background, 1..N objects) to annotations 1 / 2 / 3.

    1 = background, 2 = object interior, 3 = object boundary (inner boundary pixels,
    and every pixel where two objects touch), so that touching objects can be split.
    """
    from skimage.segmentation import find_boundaries

    stack = as_stack(instances, "instance labels")
    out = np.ones(stack.shape, dtype=np.uint8)
    for z, sl in enumerate(stack):
        fg = sl > 0
        boundary = find_boundaries(sl, mode="inner") & fg
        out[z][fg] = 2
        out[z][boundary] = 3
    return out.reshape(np.shape(instances))


def to_annotations(labels: np.ndarray, kind: LabelsKind) -> np.ndarray:
    """Any supported label image as annotations (0 = ignore, 1 = background, 2.. classes)."""
    if kind not in LABELS_KINDS:
        raise InputError(f"unknown labels kind {kind!r}; use one of {', '.join(LABELS_KINDS)}")
    labels = check_labels_array(labels)
    if kind == "instance":
        return instance_to_classes(labels)
    top = int(labels.max()) if labels.size else 0
    if kind == "semantic":
        top += 1
    dtype = np.uint8 if top < 256 else np.uint16
    if top >= 64:
        raise InputError(
            f"the labels have {top} classes; for one label per object use --labels-kind instance"
        )
    out = labels.astype(dtype)
    return out + 1 if kind == "semantic" else out


class LazyAnnotations:
    """Label images of a ``kind`` that do not fit in memory, seen as annotations: each
    slice is converted by :func:`to_annotations` when it is read (training reads only
    the slices it needs, see :class:`~napari_unet.core.train.data.LazyTarget`)."""

    def __init__(self, source, kind: LabelsKind):
        if kind not in LABELS_KINDS:
            raise InputError(f"unknown labels kind {kind!r}; use one of "
                             f"{', '.join(LABELS_KINDS)}")
        self.source, self.kind = source, kind
        self.shape = tuple(source.shape)
        self.ndim = len(self.shape)
        self.dtype = np.dtype(np.uint8)

    def convert(self, plane: np.ndarray) -> np.ndarray:
        return to_annotations(plane, self.kind)

    def __getitem__(self, key) -> np.ndarray:  # whole slices: conversion needs them
        return self.convert(np.asarray(self.source[key]))


def lazy_or_converted(labels, kind: LabelsKind):
    """:func:`to_annotations` of labels held in memory; :class:`LazyAnnotations` of lazy
    ones (dask or zarr arrays), converted slice by slice when read."""
    if isinstance(labels, np.ndarray):
        return to_annotations(labels, kind)
    return LazyAnnotations(labels, kind)


def border_weights(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The U-Net paper's weight map: ``1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` on
    background pixels, ``d1`` and ``d2`` their distances to the nearest and second
    nearest object, so the thin gaps between touching objects weigh up to ``1 + w0``.

    ``instances`` is one label per object (0 = background), 2D or a stack; returns
    float32 weights of the same shape. Distances are computed in a window around each
    object, as far as the weight is still above 1 % of ``w0``.
    """
    from scipy.ndimage import distance_transform_edt, find_objects

    stack = as_stack(check_labels_array(instances, "instance labels"))
    out = np.ones(stack.shape, np.float32)
    reach = int(np.ceil(sigma * np.sqrt(2 * np.log(100.0))))
    from napari_unet.core.metrics import sequential_ids

    for z, sl in enumerate(stack):
        if not sl.any():
            continue
        sl = sequential_ids(sl)  # find_objects lists every id up to the largest
        d1 = np.full(sl.shape, np.inf, np.float32)
        d2 = np.full(sl.shape, np.inf, np.float32)
        for i, box in enumerate(find_objects(sl), start=1):
            if box is None:
                continue
            win = tuple(slice(max(b.start - reach, 0), b.stop + reach) for b in box)
            dist = distance_transform_edt(sl[win] != i).astype(np.float32)
            a, b = d1[win], d2[win]
            d2[win] = np.minimum(b, np.maximum(a, dist))
            d1[win] = np.minimum(a, dist)
        gap = d1 + d2
        near = (sl == 0) & np.isfinite(gap)
        out[z][near] += w0 * np.exp(-(gap[near] ** 2) / (2 * sigma**2))
    return out.reshape(np.shape(instances))


def painted_objects(annotations: np.ndarray) -> np.ndarray:
    """Objects of painted annotations (0 = none, 1 = background, 2.. classes): each
    connected region of one foreground class, numbered 1..N per slice."""
    from skimage.measure import label as connected

    stack = as_stack(check_labels_array(annotations, "annotations"))
    out = np.zeros(stack.shape, np.int32)
    for z, sl in enumerate(stack):
        offset = 0
        for c in np.unique(sl[sl >= 2]):
            comp = connected(sl == c).astype(np.int32)
            out[z][comp > 0] = comp[comp > 0] + offset
            offset += int(comp.max())
    return out.reshape(np.shape(annotations))


def annotation_classes(annotations: Sequence[np.ndarray]) -> int:
    """Number of model classes K (annotations 1..K) that the annotations ask for."""
    top = max((int(a.max()) if a.size else 0) for a in annotations)
    return max(top, 2)
