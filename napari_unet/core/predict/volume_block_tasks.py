"""The tasks of a volume predicted block by block (:mod:`.volume_blocks`): each runs on
one 3D block in this process or on a dask worker, reading the input and the shared zarr
outputs and writing its own chunks of them.

Probabilities, uncertainty and classes of a block read with a halo of context
(:func:`predict_task`); the seeds of its 3D objects (:func:`seeds_task`); the pairs of
ids that touch across its faces (:func:`faces_task`); the watershed grown from the
joined seeds over the block and a halo (:func:`watershed_task`); the final numbering
(:func:`relabel_task`). The seeds and the watershed are those of
:func:`~.volume_instances.volume_instances` on the whole volume (sure interiors, or
the maxima of the distance transform in micrometres), computed over each block and its
halo; the joining and numbering are those of the 2D blocks (:mod:`.stitch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_unet.core.config import VOLUME_OBJECT_HALO
from napari_unet.core.io.ngff import open_output
from napari_unet.core.predict.block_tasks import task_predictor
from napari_unet.core.predict.regions import open_source
from napari_unet.core.predict.stitch import face_pairs
from napari_unet.core.predict.uncertainty import class_entropy

Box = tuple[slice, ...]


@dataclass(frozen=True)
class BoxGrid:
    """The blocks of a (Z, Y, X) volume: boxes of ``block`` voxels (smaller at the far
    faces), numbered in C order."""

    shape: tuple[int, int, int]
    block: tuple[int, int, int]

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(-(-n // b) for n, b in zip(self.shape, self.block))

    def __len__(self) -> int:
        return int(np.prod(self.counts))

    def box(self, i: int, halo: tuple[int, ...] | None = None,
            least: tuple[int, ...] | None = None) -> Box:
        """Block ``i``, grown by ``halo`` on every face (clipped to the volume), and to
        at least ``least`` voxels per axis where the volume has them."""
        key = np.unravel_index(int(i), self.counts)
        out = []
        for axis, (k, b, n) in enumerate(zip(key, self.block, self.shape)):
            h = 0 if halo is None else int(halo[axis])
            a, z = max(0, int(k) * b - h), min(n, (int(k) + 1) * b + h)
            need = 0 if least is None else min(n, int(least[axis]))
            if z - a < need:  # grow towards the inside of the volume
                a = max(0, min(a, n - need))
                z = a + need
            out.append(slice(a, z))
        return tuple(out)

    def block_of(self, box: Box) -> np.ndarray:
        """The number of the block that holds each voxel of ``box`` (C order)."""
        index = [(np.arange(s.start, s.stop) // b) for s, b in zip(box, self.block)]
        return np.ravel_multi_index(np.ix_(*index), self.counts)


@dataclass
class VolumeJob:
    """What every task of one volume prediction needs (picklable; the model travels apart)."""

    source: Any  # an array, or a LazySource each process opens itself
    grid: BoxGrid
    voxel_size: tuple[float, float, float] | None
    stats: tuple[float, float] | None  # the volume's normalisation, from a sample
    halo: tuple[int, int, int]  # context of the probabilities
    labels: str  # paths of the arrays of the OME-Zarr outputs
    probabilities: str | None = None
    uncertainty: str | None = None
    instances: bool = False
    splits: bool = False  # an instance model: the cores of its interior seed the objects
    object_halo: tuple[int, int, int] = VOLUME_OBJECT_HALO  # of seeds and watershed
    scratch: dict[str, str] = field(default_factory=dict)
    offsets: np.ndarray | None = None  # first global id of each block, minus one
    seed_map: np.ndarray | None = None
    final_map: np.ndarray | None = None
    options: dict = field(default_factory=dict)


def read_box(data: Any, box: Box) -> np.ndarray:
    part = data[box]
    if hasattr(part, "dask"):  # a dask array: read in this thread, a worker's too
        part = part.compute(scheduler="synchronous")
    return np.asarray(part)


def _read(path: str, box: Box) -> np.ndarray:
    return np.asarray(open_output(path)[box])


def _write(path: str, box: Box, value: np.ndarray, channels: bool = False) -> None:
    open_output(path)[(slice(None),) * channels + box] = value


def _inner(outer: Box, inner: Box) -> Box:
    """``inner`` as a region of an array that holds ``outer``."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for o, i in zip(outer, inner))


def _sampling(job: VolumeJob) -> tuple[float, float, float]:
    return (1.0, 1.0, 1.0) if job.voxel_size is None else tuple(
        float(v) for v in job.voxel_size)


def _number(job: VolumeJob, box: Box, mask: np.ndarray) -> np.ndarray:
    """Number the seeds ``mask`` of a block (26-connected, from 1), write them and
    return their sizes (index = local id)."""
    from skimage.measure import label as connected

    seeds = connected(mask, connectivity=3).astype(np.uint32)
    _write(job.scratch["seeds"], box, seeds)
    return np.bincount(seeds.ravel())


#: The scratch classes of a volume with instances: background, foreground, and (instance
#: models) the foreground of their interior (:func:`~.volume_instances.seed_region`).
FOREGROUND, INTERIOR = 1, 2


def predict_task(i: int, job: VolumeJob, model: Any) -> None:
    """Probabilities of block ``i`` from it and its halo, cropped to it; writes them,
    their uncertainty and the classes (the labels, or with instances the scratch
    classes: :data:`FOREGROUND`, and :data:`INTERIOR` where an instance model's seeds
    start)."""
    from napari_unet.core.predict.volume_instances import seed_region

    predictor = task_predictor(job, model)
    inner = job.grid.box(i)
    outer = job.grid.box(i, job.halo, least=predictor.smallest)
    data = read_box(open_source(job.source), outer)
    predictor.stats = job.stats
    try:
        probs = predictor.probabilities(data, job.voxel_size)
    finally:
        predictor.stats = None
    probs = probs[(slice(None), *_inner(outer, inner))]
    classes = predictor.labels(probs)
    if job.probabilities is not None:
        _write(job.probabilities, inner, probs, channels=True)
    if job.uncertainty is not None:
        _write(job.uncertainty, inner, class_entropy(probs))
    if not job.instances:
        _write(job.labels, inner, classes)
        return
    scratch = (classes > 0).astype(np.uint8) * FOREGROUND
    if job.splits:
        scratch[seed_region(probs, classes, True)] = INTERIOR
    _write(job.scratch["classes"], inner, scratch)


def seeds_task(i: int, job: VolumeJob, model: Any = None) -> np.ndarray:
    """The seeds of block ``i``: :func:`~.objects.object_cores` of the interior
    (instance models) or of the foreground, as
    :func:`~.volume_instances.volume_instances` finds them, over the block and its
    halo; returns their sizes."""
    from napari_unet.core.predict.objects import object_cores
    from napari_unet.core.predict.volume_instances import volume_cores

    inner = job.grid.box(i)
    outer = job.grid.box(i, job.object_halo)
    classes = _read(job.scratch["classes"], outer)
    region = classes == INTERIOR if job.splits else classes > 0
    mask = object_cores(region, _sampling(job), volume_cores(job.splits))
    return _number(job, inner, mask[_inner(outer, inner)])


def _global(job: VolumeJob, box: Box, local: np.ndarray) -> np.ndarray:
    """Global ids (int64, 0 stays 0) of the local seed ids read at ``box``."""
    out = job.offsets[job.grid.block_of(box)] + local.astype(np.int64)
    return np.where(local > 0, out, 0)


def faces_task(i: int, job: VolumeJob, model: Any = None) -> np.ndarray:
    """Pairs of global seed ids (N, 2) that touch across the block's near faces (the
    faces at its smaller z, y and x), diagonals included."""
    inner = job.grid.box(i)
    pairs = [np.zeros((0, 2), np.int64)]
    for axis, side in enumerate(inner):
        if side.start == 0:
            continue
        box = tuple(slice(side.start - 1, side.start + 1) if a == axis else
                    slice(max(0, s.start - 1), min(n, s.stop + 1))
                    for a, (s, n) in enumerate(zip(inner, job.grid.shape)))
        ids = np.moveaxis(_global(job, box, _read(job.scratch["seeds"], box)), axis, 0)
        pairs.append(face_pairs(ids[0], ids[1]))
    return np.unique(np.concatenate(pairs), axis=0)


def watershed_task(i: int, job: VolumeJob, model: Any = None,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The seeded watershed of block ``i`` over it and its halo (the negated distance to
    the background in micrometres, the seeds joined across blocks); writes its object
    ids and returns them with their voxel counts."""
    from napari_unet.core.predict.objects import grow_objects

    inner = job.grid.box(i)
    outer = job.grid.box(i, job.object_halo)
    foreground = _read(job.scratch["classes"], outer) > 0
    seeds = job.seed_map[_global(job, outer, _read(job.scratch["seeds"], outer))]
    out = grow_objects(foreground, seeds, _sampling(job))
    out = out[_inner(outer, inner)].astype(np.uint32)
    _write(job.labels, inner, out)
    return np.unique(out, return_counts=True)


def relabel_task(i: int, job: VolumeJob, model: Any = None) -> int:
    """Renumber the block's ids to the final ones; returns its largest id."""
    box = job.grid.box(i)
    out = job.final_map[_read(job.labels, box).astype(np.int64)]
    _write(job.labels, box, out)
    return int(out.max(initial=0))

