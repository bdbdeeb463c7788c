"""3D objects: a seeded watershed that respects anisotropy, and the baseline that joins
2D objects of neighbouring slices by their overlap.

:func:`volume_instances` gives one id per object through the whole volume. Each object
grows from a core (:func:`~.objects.object_cores`): a maximum of the distance transform,
measured in micrometres (``sampling`` = voxel size, so a z step 2x coarser counts 2x),
that rises above the saddles to its neighbours. For models trained on instance masks
it is the distance transform of their interior (p(interior) at least
:data:`~napari_unet.core.decision.VOLUME_INTERIOR_PROBABILITY`; smoothed by one xy voxel,
cores two xy voxels high, :data:`~napari_unet.core.decision.INTERIOR_CORES`), for others
that of the
foreground (smoothed, as 2D objects are found:
:data:`~napari_unet.core.decision.FOREGROUND_CORES`); the watershed floods the negated
distance transform of the foreground. A 2D model applied slice by slice gives 3D
objects two ways: :func:`stacked_instances` (what :func:`predict_stitched` gives)
floods its foreground stacked into a volume with the same watershed;
:func:`stitch_slices`, the baseline, joins its 2D objects of neighbouring slices by
their overlap.

The sure interiors that seed the objects of 2D instance models (p(interior) at least
0.8, 26-connected) merged touching nuclei in 3D, where a thin bridge of sure voxels
joins two of them; the cores of the interior split them (docs/volumes.md, "3D objects
of instance models"; ``benchmarks/quality/cores.py``).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from napari_unet.core.decision import (
    FOREGROUND_CORES,
    INTERIOR_CORES,
    VOLUME_INTERIOR_PROBABILITY,
    Cores,
    interior_seeds,
)
from napari_unet.core.predict.objects import drop_small, grow_objects, object_cores
from napari_unet.core.predict.stitch import join
from napari_unet.core.voxels import VoxelSize


def seed_region(probs: np.ndarray | None, labels: np.ndarray, splits: bool) -> np.ndarray:
    """What the objects of a volume grow from: the interior of an instance model
    (``splits``: foreground of ``labels`` with p(interior), ``probs[-2]``, at least
    :data:`~napari_unet.core.decision.VOLUME_INTERIOR_PROBABILITY`), else the
    foreground."""
    if splits:
        return interior_seeds(probs[-2], labels, VOLUME_INTERIOR_PROBABILITY)
    return np.asarray(labels) > 0


def volume_cores(splits: bool) -> Cores:
    """How the cores of :func:`seed_region` are found (:func:`~.objects.object_cores`):
    :data:`~napari_unet.core.decision.INTERIOR_CORES` for an instance model, else
    :data:`~napari_unet.core.decision.FOREGROUND_CORES`, as in 2D."""
    return INTERIOR_CORES if splits else FOREGROUND_CORES


def volume_instances(probs: np.ndarray, labels: np.ndarray, voxel_size: VoxelSize | None,
                     *, splits: bool, min_size: int = 10) -> np.ndarray:
    """One id per 3D object (int32, 0 = background) of the foreground of ``labels``
    (Z, Y, X) from ``probs`` (K, Z, Y, X).

    The objects grow from the :func:`~.objects.object_cores` (26-connected, found as
    :func:`volume_cores` says) of :func:`seed_region` (``splits``: ``probs`` are
    background / interior / boundary, and the cores are those of the interior) by the
    watershed of the negated distance to the background. Objects smaller than
    ``min_size`` voxels are dropped.
    """
    from skimage.measure import label as connected
    from skimage.segmentation import relabel_sequential

    sampling = (1.0, 1.0, 1.0) if voxel_size is None else tuple(float(v) for v in voxel_size)
    foreground = np.asarray(labels) > 0
    if not foreground.any():
        return np.zeros(foreground.shape, np.int32)
    seeds = connected(object_cores(seed_region(probs, labels, splits), sampling,
                                   volume_cores(splits)), connectivity=3)
    out = drop_small(grow_objects(foreground, seeds, sampling), min_size)
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
