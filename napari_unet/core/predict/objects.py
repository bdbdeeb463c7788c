"""Objects from predicted classes: each connected region of a class one object."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_unet.core.config import MIN_OBJECT_SIZE


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


def split_into_objects(predictions: Any, min_size: int = MIN_OBJECT_SIZE) -> Any:
    """The predicted classes (0 = background) split into objects, one int32 id per
    connected region of a class of at least ``min_size`` pixels, numbered slice after
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
    from skimage.measure import label as connected

    planes = predictions.reshape(-1, *predictions.shape[-2:])
    out = np.zeros(planes.shape, np.int32)
    offset = 0
    for k, plane in enumerate(planes):
        for c in np.unique(plane[plane > 0]):
            objects = connected(plane == c)
            small = np.bincount(objects.ravel()) < min_size
            small[0] = True
            objects[small[objects]] = 0
            out[k][objects > 0] = objects[objects > 0] + offset
            offset = int(out.max())
    return out.reshape(predictions.shape)
