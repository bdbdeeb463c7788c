"""The tasks of a block prediction (:mod:`.blocks`): each runs on one block (or one
slice) in this process or on a dask worker, reading and writing the shared zarr outputs.

Percentiles of a slice (:func:`stats_task`); probabilities, uncertainty, classes and the
seeds of an instance model's objects (:func:`predict_task`); the seeds of other models,
the cores of each class's region over the block and a halo (:func:`seeds_task`); the
pairs of seed ids that touch across block faces (:func:`faces_task`); the watershed
from the stitched seeds (:func:`watershed_task`); the final numbering
(:func:`relabel_task`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_unet.core.io.ngff import open_output
from napari_unet.core.predict.regions import (
    BlockGrid,
    open_source,
    region_probabilities,
    slice_stats,
)
from napari_unet.core.predict.stitch import face_pairs
from napari_unet.core.predict.uncertainty import class_entropy

#: Context (pixels) around a block for the seeds and the watershed of its objects.
WATERSHED_HALO = 64


@dataclass
class Job:
    """What every task of one prediction needs (picklable; the model travels apart)."""

    source: Any
    grid: BlockGrid
    two_d: bool
    labels: str  # path of the labels array ("0" inside the labels group)
    probabilities: str | None
    instances: bool
    splits: bool  # an instance model: its sure interiors seed the objects
    scratch: dict[str, str] = field(default_factory=dict)
    stats: list | None = None  # per slice; None: each block holds its whole slice
    halo: int = WATERSHED_HALO
    offsets: np.ndarray | None = None  # first global id of each block, minus one
    seed_map: np.ndarray | None = None
    final_map: np.ndarray | None = None
    options: dict = field(default_factory=dict)
    uncertainty: str | None = None  # path of the uncertainty array (float32, like labels)


def task_predictor(job: Any, model: Any):
    """The predictor of a task: ``model`` itself in this process, or on a cluster's
    worker the one it built for the bundle sent once (:func:`~.cluster.worker_predictor`)."""
    if not hasattr(model, "bundle") or not hasattr(model, "_forward"):  # a bundle sent once
        from napari_unet.core.predict.cluster import worker_predictor

        return worker_predictor(model, job.options)
    return model


def _write(path: str, job: Job, z: int, ys: slice, xs: slice, value: np.ndarray,
           channels: bool = False) -> None:
    arr = open_output(path)
    if job.two_d:
        arr[(slice(None),) * channels + (ys, xs)] = value
    else:
        arr[(slice(None),) * channels + (z, ys, xs)] = value


def _read_out(path: str, job: Job, z: int, ys: slice, xs: slice) -> np.ndarray:
    arr = open_output(path)
    return np.asarray(arr[ys, xs] if job.two_d else arr[z, ys, xs])


def stats_task(z: int, job: Job, model: Any) -> tuple[float, float] | None:
    bundle = model if not hasattr(model, "bundle") else model.bundle
    return slice_stats(open_source(job.source), z, bundle.normalisation)


def predict_task(i: int, job: Job, model: Any) -> np.ndarray | None:
    """Probabilities, classes and (for an instance model's objects) the block's own
    seeds, its sure interiors; returns the seeds' sizes (index = local id) or
    ``None``."""
    predictor = task_predictor(job, model)
    data = open_source(job.source)
    z, y0, y1, x0, x1 = job.grid.bounds(i)
    ys, xs = slice(y0, y1), slice(x0, x1)
    stats = job.stats[z] if job.stats is not None else "slice"
    probs = region_probabilities(predictor, data, z, y0, y1, x0, x1, stats)
    classes = predictor.labels_2d(probs)
    if job.probabilities is not None:
        _write(job.probabilities, job, z, ys, xs, probs, channels=True)
    if job.uncertainty is not None:
        _write(job.uncertainty, job, z, ys, xs, class_entropy(probs))
    if not job.instances:
        _write(job.labels, job, z, ys, xs, classes)
        return None
    _write(job.scratch["classes"], job, z, ys, xs, classes.astype(np.uint8))
    if not job.splits:
        return None
    from skimage.measure import label as connected

    from napari_unet.core.decision import interior_seeds

    seeds = connected(interior_seeds(probs[1], classes)).astype(np.uint32)
    _write(job.scratch["seeds"], job, z, ys, xs, seeds)
    _write(job.scratch["relief"], job, z, ys, xs, probs[2] - probs[1])
    return np.bincount(seeds.ravel())


def _halo(job: Job, i: int) -> tuple[int, int, int, int, int, int, int, int, int]:
    """Slice ``z``, the block (y0, y1, x0, x1) and it grown by the halo (a, b, c, d)."""
    z, y0, y1, x0, x1 = job.grid.bounds(i)
    h, w = job.grid.shape[1:]
    a, b = max(0, y0 - job.halo), min(h, y1 + job.halo)
    c, d = max(0, x0 - job.halo), min(w, x1 + job.halo)
    return z, y0, y1, x0, x1, a, b, c, d


def seeds_task(i: int, job: Job, model: Any = None) -> np.ndarray:
    """The seeds of a block of a model without an interior class: the cores of each
    class's region (:func:`~.objects.class_cores`, as
    :func:`~.objects.class_objects` finds them) over the block and its halo, numbered
    within the block (8-connected, one class each); returns their sizes."""
    from skimage.measure import label as connected

    from napari_unet.core.predict.objects import class_cores

    z, y0, y1, x0, x1, a, b, c, d = _halo(job, i)
    classes = _read_out(job.scratch["classes"], job, z, slice(a, b), slice(c, d))
    cores = class_cores(classes)[y0 - a : y1 - a, x0 - c : x1 - c]
    seeds = connected(cores, background=0).astype(np.uint32)  # one class per seed
    _write(job.scratch["seeds"], job, z, slice(y0, y1), slice(x0, x1), seeds)
    return np.bincount(seeds.ravel())


def _global(job: Job, local: np.ndarray, z: int, y0: int, x0: int) -> np.ndarray:
    """Global ids (int64, 0 stays 0) of local ids read at (y0.., x0..) of slice z."""
    by = (np.arange(local.shape[0]) + y0) // job.grid.block[0]
    bx = (np.arange(local.shape[1]) + x0) // job.grid.block[1]
    _, ny, nx = job.grid.counts
    block = (z * ny + by)[:, None] * nx + bx[None, :]
    out = job.offsets[block] + local.astype(np.int64)
    return np.where(local > 0, out, 0)


def faces_task(i: int, job: Job, model: Any = None) -> np.ndarray:
    """Pairs of global ids (N, 2) that touch across the block's top and left faces."""
    z, y0, y1, x0, x1 = job.grid.bounds(i)
    h, w = job.grid.shape[1:]
    ids_path = job.scratch["seeds"]
    classes_path = None if job.splits else job.scratch["classes"]
    pairs = [np.zeros((0, 2), np.int64)]
    for axis, start in ((0, y0), (1, x0)):
        if start == 0:
            continue
        if axis == 0:
            ys, xs = slice(y0 - 1, y0 + 1), slice(max(0, x0 - 1), min(w, x1 + 1))
        else:
            ys, xs = slice(max(0, y0 - 1), min(h, y1 + 1)), slice(x0 - 1, x0 + 1)
        # two rows (or columns) across the face: the one outside, then this block's
        strip = _global(job, _read_out(ids_path, job, z, ys, xs), z, ys.start, xs.start)
        cls = None if classes_path is None else _read_out(classes_path, job, z, ys, xs)
        if axis == 1:
            strip = strip.T
            cls = None if cls is None else cls.T
        pairs.append(face_pairs(strip[0], strip[1], None if cls is None else (cls[0], cls[1])))
    return np.unique(np.concatenate(pairs), axis=0)


def watershed_task(i: int, job: Job, model: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """The watershed of the block from the stitched seeds over the block and a halo (an
    instance model's on p(boundary) - p(interior), others' on each class's negated
    distance transform, :func:`~.objects.grow_classes`); writes its object ids and
    returns them with their pixel counts."""
    from skimage.segmentation import watershed

    from napari_unet.core.predict.objects import grow_classes

    z, y0, y1, x0, x1, a, b, c, d = _halo(job, i)
    ys, xs = slice(a, b), slice(c, d)
    seeds = job.seed_map[_global(job, _read_out(job.scratch["seeds"], job, z, ys, xs),
                                 z, a, c)]
    classes = _read_out(job.scratch["classes"], job, z, ys, xs)
    if job.splits:
        relief = _read_out(job.scratch["relief"], job, z, ys, xs)
        out = watershed(relief, markers=seeds, mask=classes > 0)
    else:
        out = grow_classes(classes, seeds)
    out = out[y0 - a : y1 - a, x0 - c : x1 - c].astype(np.uint32)
    _write(job.labels, job, z, slice(y0, y1), slice(x0, x1), out)
    return np.unique(out, return_counts=True)


def relabel_task(i: int, job: Job, model: Any = None) -> int:
    """Renumber the block's ids to the final ones; returns its largest id."""
    z, y0, y1, x0, x1 = job.grid.bounds(i)
    ys, xs = slice(y0, y1), slice(x0, x1)
    ids = _read_out(job.labels, job, z, ys, xs)
    key = ids.astype(np.int64)
    out = job.final_map[key]
    _write(job.labels, job, z, ys, xs, out)
    return int(out.max(initial=0))
