"""3D objects: a seeded watershed that respects anisotropy, and the baseline that joins
2D objects of neighbouring slices by their overlap.

:func:`volume_instances` gives one id per object through the whole volume: for models
trained on instance masks the sure interiors (p(interior) at least
:data:`~napari_unet.core.decision.SEED_PROBABILITY`, as in 2D) seed it, for others the
maxima of the distance to the background; the watershed floods the negated distance
transform of the foreground, measured in micrometres (``sampling`` = voxel size), so a
z step 2x coarser counts 2x. :func:`stitch_slices` is what a 2D model applied slice by
slice gives in 3D.
"""

from __future__ import annotations

import numpy as np

from napari_unet.core.decision import interior_seeds
from napari_unet.core.predict.objects import drop_small
from napari_unet.core.predict.stitch import join
from napari_unet.core.voxels import VoxelSize


def volume_instances(probs: np.ndarray, labels: np.ndarray, voxel_size: VoxelSize | None,
                     *, splits: bool, min_size: int = 10, h: float | None = None) -> np.ndarray:
    """One id per 3D object (int32, 0 = background) of the foreground of ``labels``
    (Z, Y, X) from ``probs`` (K, Z, Y, X).

    ``splits``: ``probs`` are background / interior / boundary and the sure interiors
    (26-connected) seed the objects; otherwise seeds are the regional maxima of the
    distance transform higher than their surroundings by ``h`` micrometres (by default
    two xy voxels). Objects smaller than ``min_size`` voxels are dropped.
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import label as connected
    from skimage.morphology import h_maxima
    from skimage.segmentation import relabel_sequential, watershed

    sampling = (1.0, 1.0, 1.0) if voxel_size is None else tuple(float(v) for v in voxel_size)
    foreground = np.asarray(labels) > 0
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    distance = distance_transform_edt(foreground, sampling=sampling).astype(np.float32)
    if splits:
        seeds = connected(interior_seeds(probs[-2], labels), connectivity=3)
        seeds = drop_small(seeds, max(1, min_size // 2))
    else:
        step = 2.0 * min(sampling[1:]) if h is None else float(h)
        seeds = connected(h_maxima(distance, step) > 0, connectivity=3)
    out = watershed(-distance, markers=seeds, mask=foreground)
    out = drop_small(out, min_size)
    return relabel_sequential(out)[0].astype(np.int32)


def stitch_slices(objects: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """3D objects from 2D objects of each slice of ``objects`` (Z, Y, X; ids per slice,
    0 = background): an object joins the object of the slice before that it overlaps
    most, when the overlap covers at least ``threshold`` of the smaller of the two (an
    IoU, as Cellpose stitches, splits the small caps of round objects from them).
    Returns int32 ids 1..N through the volume."""
    objects = np.asarray(objects)
    stack = np.zeros(objects.shape, np.int64)
    offset = 0
    for z, plane in enumerate(objects):  # ids unique across slices
        fg = plane > 0
        stack[z][fg] = plane[fg].astype(np.int64) + offset
        offset = int(stack[z].max(initial=offset))
    pairs = []
    area = np.bincount(stack.ravel(), minlength=offset + 1)
    for z in range(1, stack.shape[0]):
        a, b = stack[z - 1], stack[z]
        both = (a > 0) & (b > 0)
        if not both.any():
            continue
        k = np.int64(offset + 1)
        keys, inter = np.unique(b[both] * k + a[both], return_counts=True)
        ib, ia = keys // k, keys % k
        iou = inter / np.minimum(area[ia], area[ib])  # overlap of the smaller
        order = np.lexsort((-iou, ib))  # per object of slice z, its best partner first
        ib, ia, iou = ib[order], ia[order], iou[order]
        first = np.r_[True, ib[1:] != ib[:-1]]
        keep = first & (iou >= threshold)
        pairs.append(np.stack([ia[keep], ib[keep]], axis=1))
    pairs_arr = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    component = join(offset, pairs_arr)  # 0 for background, then in order of smallest id
    number = np.zeros(component.max() + 1, np.int64)
    used = np.unique(component[stack[stack > 0]]) if offset else np.zeros(0, np.int64)
    number[used] = np.arange(1, len(used) + 1)
    out = number[component[stack]]
    return out.astype(np.int32)


def predict_stitched(predictor, volume: np.ndarray, *, threshold: float = 0.5,
                     min_size: int = 10, progress=None, uncertainty: bool = False):
    """The 2D baseline of a volume: a 2D :class:`~.tiles.Predictor` slice by slice, its
    objects of each slice joined across z by :func:`stitch_slices`. Returns the 2D
    predictor's :class:`~.tiles.Prediction` with ``instances`` made 3D objects (and with
    ``uncertainty`` each voxel's)."""
    result = predictor.predict(volume, instances=True, min_size=min_size, progress=progress,
                               uncertainty=uncertainty)
    result.instances = drop_small(stitch_slices(result.instances, threshold), min_size)
    from skimage.segmentation import relabel_sequential

    result.instances = relabel_sequential(result.instances)[0].astype(np.int32)
    return result
