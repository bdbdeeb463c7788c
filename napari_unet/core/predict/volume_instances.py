"""3D objects: a seeded watershed that respects anisotropy, and the baseline that joins
2D objects of neighbouring slices by their overlap.

:func:`volume_instances` gives one id per object through the whole volume. Each object
grows from a core (:func:`object_cores`): a maximum of the distance transform, measured
in micrometres (``sampling`` = voxel size, so a z step 2x coarser counts 2x), that rises
at least two xy voxels above the saddles to its neighbours. For models trained on
instance masks the distance is that of their interior (p(interior) at least
:data:`~napari_unet.core.decision.VOLUME_INTERIOR_PROBABILITY`), for others that of the
foreground; the watershed floods the negated distance transform of the foreground. A 2D
model applied slice by slice gives 3D objects two ways: :func:`stacked_instances` (what
:func:`predict_stitched` gives) floods its foreground stacked into a volume with the
same watershed; :func:`stitch_slices`, the baseline, joins its 2D objects of
neighbouring slices by their overlap.

The sure interiors that seed the objects of 2D (p(interior) at least 0.8, 26-connected)
merged touching nuclei in 3D, where a thin bridge of sure voxels joins two of them; the
cores of the interior split them (measured in ``benchmarks/quality/volumes.py``'s dense
rows; the figures are in docs/volumes.md, "3D objects of instance models").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_unet.core.decision import VOLUME_INTERIOR_PROBABILITY, interior_seeds
from napari_unet.core.predict.objects import drop_small
from napari_unet.core.predict.stitch import join
from napari_unet.core.voxels import VoxelSize


def object_cores(region: np.ndarray, sampling, h: float | None = None) -> np.ndarray:
    """Where the objects of ``region`` (bool, Z, Y, X) start: the maxima of its distance
    transform in micrometres (``sampling``, the voxel size) that rise at least ``h``
    above the saddles to their neighbours (by default two xy voxels), so two objects
    joined by a neck get one core each. A part of ``region`` thinner than that has no
    core: it becomes a piece of the object it touches, or no object. Bool, the same
    shape; the seeds of the blocks of a large volume
    (:func:`~.volume_block_tasks.seeds_task`) are these, over each block and its halo."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import h_maxima

    sampling = tuple(float(v) for v in sampling)
    if not region.any():
        return np.zeros(region.shape, bool)
    distance = distance_transform_edt(region, sampling=sampling).astype(np.float32)
    step = 2.0 * min(sampling[1:]) if h is None else float(h)
    return h_maxima(distance, step) > 0


def seed_region(probs: np.ndarray | None, labels: np.ndarray, splits: bool) -> np.ndarray:
    """What :func:`object_cores` finds the cores of: the interior of an instance model
    (``splits``: foreground of ``labels`` with p(interior), ``probs[-2]``, at least
    :data:`~napari_unet.core.decision.VOLUME_INTERIOR_PROBABILITY`), else the
    foreground."""
    if splits:
        return interior_seeds(probs[-2], labels, VOLUME_INTERIOR_PROBABILITY)
    return np.asarray(labels) > 0


def volume_instances(probs: np.ndarray, labels: np.ndarray, voxel_size: VoxelSize | None,
                     *, splits: bool, min_size: int = 10, h: float | None = None) -> np.ndarray:
    """One id per 3D object (int32, 0 = background) of the foreground of ``labels``
    (Z, Y, X) from ``probs`` (K, Z, Y, X).

    The objects grow from :func:`object_cores` (26-connected) of :func:`seed_region`
    (``splits``: ``probs`` are background / interior / boundary, and the cores are those
    of the interior; ``h`` in micrometres) by the watershed of the negated distance to
    the background. Objects smaller than ``min_size`` voxels are dropped.
    """
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import label as connected
    from skimage.segmentation import relabel_sequential, watershed

    sampling = (1.0, 1.0, 1.0) if voxel_size is None else tuple(float(v) for v in voxel_size)
    foreground = np.asarray(labels) > 0
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    distance = distance_transform_edt(foreground, sampling=sampling).astype(np.float32)
    seeds = connected(object_cores(seed_region(probs, labels, splits), sampling, h),
                      connectivity=3)
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


def stacked_instances(prediction, voxel_size: VoxelSize | None, *, splits: bool,
                      min_size: int = 10) -> np.ndarray:
    """3D objects of a 2D model's prediction of a volume slice by slice: its foreground
    stacked into a volume and split by :func:`volume_instances` at ``voxel_size`` (from
    the cores of the interior of an instance model, ``splits``, whose ``probabilities``
    (Z, K, Y, X) it then needs), so an object is one id through the slices it spans and two
    nuclei that touch in one slice stay apart where they are apart in 3D. Measured
    against :func:`stitch_slices` in ``benchmarks/quality/volumes.py``."""
    probs = None
    if splits:
        if prediction.probabilities is None:
            raise ValueError("the objects of an instance model need its probabilities")
        probs = np.moveaxis(np.asarray(prediction.probabilities), 1, 0)
    return volume_instances(probs, prediction.labels, voxel_size, splits=splits,
                            min_size=min_size)


def predict_stitched(predictor, volume: np.ndarray, voxel_size: VoxelSize | None = None, *,
                     probabilities: bool = False, min_size: int = 10, **predict_options):
    """A volume predicted by a 2D :class:`~.tiles.Predictor` slice by slice, with 3D
    objects: its foreground (and for instance models its interior) stacked and
    split by :func:`stacked_instances` at ``voxel_size``. Returns the 2D predictor's
    :class:`~.tiles.Prediction` with ``instances`` 3D objects (its probabilities only
    when asked for); ``predict_options`` go to its ``predict`` (``slices``,
    ``progress``, ``should_stop``, ``uncertainty``)."""
    splits = predictor.splits_instances
    result = predictor.predict(volume, probabilities=probabilities or splits,
                               min_size=min_size, **predict_options)
    result = replace(result, instances=stacked_instances(result, voxel_size, splits=splits,
                                                         min_size=min_size))
    return result if probabilities else replace(result, probabilities=None)
