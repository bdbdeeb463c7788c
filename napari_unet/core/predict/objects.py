"""Objects from predicted classes: each region of a class split at the necks of its
distance transform (:func:`class_objects`), grown from its cores (:func:`object_cores`).

The connected regions of a class merged touching nuclei: one object for two that touch
over a few pixels. Each region is split by the watershed of its negated distance
transform from its cores, the maxima of the smoothed distance transform that rise above
their saddles (:data:`~napari_unet.core.decision.FOREGROUND_CORES`). In-memory
prediction, the blocks of large images and the objects made from a predictions layer
all split this way."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_unet.core.config import MIN_OBJECT_SIZE
from napari_unet.core.decision import FOREGROUND_CORES, Cores


def drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects of fewer than ``min_size`` pixels to 0."""
    if min_size <= 1 or not labels.any():
        return labels
    sizes = np.bincount(labels.ravel())
    small = sizes < min_size
    small[0] = False
    out = labels.copy()
    out[small[labels]] = 0
    return out


def object_cores(region: np.ndarray, sampling=None, cores: Cores = FOREGROUND_CORES
                 ) -> np.ndarray:
    """Where the objects of ``region`` (bool, 2D or 3D) start: the maxima of its distance
    transform (in micrometres with ``sampling``, the pixel or voxel size; else pixels),
    smoothed by a Gaussian of ``cores.smooth`` xy pixels (and 0 outside ``region``), that
    rise at least ``cores.height`` xy pixels above the saddles to their neighbours, so
    two objects joined by a neck get one core each. A part of ``region`` too thin for
    that has no core: it becomes a piece of the object it touches, or no object. Bool,
    the shape of ``region``. Each connected part of ``region`` is searched in its own
    bounding box (the parts are apart where the distance is 0), so the time follows the
    objects, not the image."""
    from scipy.ndimage import distance_transform_edt, find_objects, gaussian_filter
    from scipy.ndimage import label as connected
    from skimage.morphology import h_maxima

    region = np.asarray(region, bool)
    sampling = np.ones(region.ndim) if sampling is None else np.asarray(sampling, float)
    out = np.zeros(region.shape, bool)
    if not region.any():
        return out
    xy = float(sampling[-2:].min())
    distance = distance_transform_edt(region, sampling=sampling).astype(np.float32)
    if cores.smooth > 0:
        distance = gaussian_filter(distance, cores.smooth * xy / sampling)
        distance[~region] = 0
    parts, _ = connected(region, structure=np.ones((3,) * region.ndim, bool))
    for k, box in enumerate(find_objects(parts), start=1):
        box = tuple(slice(max(0, b.start - 1), b.stop + 1) for b in box)  # a rim of 0
        part = parts[box] == k
        found = h_maxima(np.where(part, distance[box], 0), cores.height * xy) > 0
        out[box] |= found & part
    return out


def grow_objects(region: np.ndarray, seeds: np.ndarray, sampling=None) -> np.ndarray:
    """``seeds`` (ids, 0 = none) grown over ``region`` (bool) by the watershed of its
    negated distance transform (``sampling`` as in :func:`object_cores`); a part of
    ``region`` that no seed reaches stays 0."""
    from scipy.ndimage import distance_transform_edt
    from skimage.segmentation import watershed

    region = np.asarray(region, bool)
    if not region.any():
        return np.zeros(region.shape, np.int32)
    distance = distance_transform_edt(region, sampling=sampling).astype(np.float32)
    return watershed(-distance, markers=np.where(region, seeds, 0), mask=region)


def class_cores(classes: np.ndarray, cores: Cores = FOREGROUND_CORES) -> np.ndarray:
    """The :func:`object_cores` of each class's region of ``classes`` (0 = background),
    marked with their class (0 elsewhere): labelled, each core is one class."""
    classes = np.asarray(classes)
    out = np.zeros(classes.shape, classes.dtype)
    for c in np.unique(classes[classes > 0]):
        out[object_cores(classes == c, cores=cores)] = c
    return out


def grow_classes(classes: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``seeds`` (ids, 0 = none) grown by :func:`grow_objects` over the region of each
    class of ``classes``, never into another class."""
    out = np.zeros(classes.shape, np.int64)
    for c in np.unique(classes[classes > 0]):
        region = classes == c
        grown = grow_objects(region, seeds)
        out[region] = grown[region]
    return out


def class_objects(classes: np.ndarray, min_size: int = MIN_OBJECT_SIZE,
                  cores: Cores = FOREGROUND_CORES) -> np.ndarray:
    """Objects (int32 1..N, 0 = background) of one plane of ``classes`` (0 =
    background): each class's region split by :func:`grow_classes` from its
    :func:`class_cores` (8-connected), objects smaller than ``min_size`` pixels
    dropped."""
    from skimage.measure import label as connected
    from skimage.segmentation import relabel_sequential

    classes = np.asarray(classes)
    seeds = connected(class_cores(classes, cores), background=0)
    out = drop_small(grow_classes(classes, seeds), min_size)
    return relabel_sequential(out)[0].astype(np.int32)


def split_into_objects(predictions: Any, min_size: int = MIN_OBJECT_SIZE) -> Any:
    """The predicted classes (0 = background) split into objects (:func:`class_objects`
    of each slice, at least ``min_size`` pixels), one int32 id each, numbered slice after
    slice. A lazy (zarr-backed) array is split slice by slice into a sparse array
    (:func:`~napari_unet.core.io.sparse.sparse_labels`); numpy gives numpy."""
    from napari_unet.core.io.lazy import is_lazy

    if is_lazy(predictions):
        from napari_unet.core.io.sparse import sparse_labels

        out = sparse_labels(np.shape(predictions), np.int32)
        index = [(Ellipsis,)] if predictions.ndim == 2 else [(z,) for z in range(
            predictions.shape[0])]
        offset = 0
        for i in index:
            plane = split_into_objects(np.asarray(predictions[i]), min_size)
            if plane.any():
                plane[plane > 0] += offset
                offset = int(plane.max())
                out[i] = plane
        return out
    planes = predictions.reshape(-1, *predictions.shape[-2:])
    out = np.zeros(planes.shape, np.int32)
    offset = 0
    for k, plane in enumerate(planes):
        objects = class_objects(plane, min_size)
        out[k][objects > 0] = objects[objects > 0] + offset
        offset = int(out.max())
    return out.reshape(predictions.shape)
