"""Volumes larger than memory: a 3D model predicts them block by block into a chunked
OME-Zarr, as :mod:`.blocks` does for 2D models, in this process or as tasks on the
workers of a dask cluster (the same runners).

Each block is read with a halo of context on every face (a dask or zarr array reads
only that region), predicted by the :class:`~.volume.VolumePredictor` (zoomed to the
model's voxel size and back when the volume's differs, the normalisation fixed for the
whole volume from a sample of its chunks), cropped to the block and written to its
chunks of the outputs (labels, probabilities, uncertainty); peak memory is one block
with its halo and its probabilities.

**3D objects across blocks** (``instances``): the seeds of
:func:`~.volume_instances.volume_instances` (the cores of the interior of instance
models, of the foreground of others) are found per block over it and a halo
(:data:`OBJECT_HALO`), numbered per block, made global by block offsets and joined where
they touch across a block face (:func:`~.blocks.number_objects`, as the 2D blocks join
theirs); each block then grows them by the seeded watershed over it and its halo, so an
object cut by a block face is one object on both sides. The result is that of the whole
volume in memory unless an object reaches further than the halo beyond a block face.

The outputs are written in temporary folders beside the targets and put in place when
complete (:mod:`napari_unet.core.io.ngff`); a failure leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.config import (
    MIN_OBJECT_SIZE,
    VOLUME_BLOCK,
    VOLUME_HALO,
    VOLUME_OBJECT_HALO,
)
from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import close_sources
from napari_unet.core.io.ngff import create_group, opened, put_in_place, temp_beside
from napari_unet.core.normalise import sample_chunks
from napari_unet.core.predict.blocks import ClusterRunner, LocalRunner, number_objects
from napari_unet.core.predict.regions import open_source
from napari_unet.core.predict.volume import VolumePredictor
from napari_unet.core.predict.volume_block_tasks import (
    BoxGrid,
    VolumeJob,
    faces_task,
    predict_task,
    relabel_task,
    seeds_task,
    watershed_task,
)
from napari_unet.core.voxels import VoxelSize

#: Default block (z, y, x) predicted at a time, and its halo of context per face.
BLOCK = VOLUME_BLOCK
HALO = VOLUME_HALO
#: Context (voxels) around a block for the seeds and the watershed of its 3D objects.
OBJECT_HALO = VOLUME_OBJECT_HALO


@dataclass
class VolumeBlocksResult:
    """Where the outputs went, the blocks predicted, the largest block read (with its
    halo) in voxels, and with instances the number of 3D objects."""

    labels: Path
    probabilities: Path | None
    blocks: int
    largest_block: int
    objects: int | None = None
    uncertainty: Path | None = None


def block_shape(block, shape, smallest) -> tuple[int, int, int]:
    """The block (z, y, x): ``block`` (one side for y and x, or three) within the volume,
    or :class:`InputError` when it is smaller than the model's smallest patch."""
    sides = (BLOCK[0], int(block), int(block)) if np.ndim(block) == 0 else tuple(
        int(b) for b in block)
    if len(sides) != 3 or min(sides) < 1:
        raise InputError(f"a block of a volume is Z,Y,X voxels, not {block!r}")
    out = tuple(min(b, n) for b, n in zip(sides, shape))
    small = [f"{b} < {m}" for b, m, n in zip(out, smallest, shape) if b < min(m, n)]
    if small:
        raise InputError(f"the block {' x '.join(map(str, sides))} is smaller than the "
                         f"model's smallest patch {' x '.join(map(str, smallest))} "
                         f"({', '.join(small)}): give a larger --block-size")
    return out  # type: ignore[return-value]


def predict_volume_blocks(
    predictor: VolumePredictor, volume, out: str | Path, *,
    voxel_size: VoxelSize | None = None, block=BLOCK,
    halo: tuple[int, int, int] = HALO, chunks: tuple[int, int, int] | None = None,
    probabilities: str | Path | None = None, uncertainty: str | Path | None = None,
    instances: bool = False, min_size: int = MIN_OBJECT_SIZE,
    object_halo: tuple[int, int, int] = OBJECT_HALO, overwrite: bool = False,
    client: Any = None, progress: Callable[[str, int, int], None] | None = None,
) -> VolumeBlocksResult:
    """Labels of a (Z, Y, X) ``volume`` (numpy, dask, zarr, or a
    :class:`~napari_unet.core.io.lazy.LazySource` each worker opens itself) into the
    OME-Zarr ``out``: the classes (uint8), or with ``instances`` one uint32 id per 3D
    object over the whole volume; the class probabilities (C, Z, Y, X) into
    ``probabilities`` and each voxel's uncertainty (float32 in [0, 1]) into
    ``uncertainty`` when given. Chunks are ``chunks`` (by default the block; the block
    must be a multiple of them). With a dask ``client`` the blocks are tasks on its
    workers, which must see the input and the output folders. ``progress(what, done,
    total)`` follows the tasks."""
    data = open_source(volume)
    shape = tuple(int(n) for n in data.shape)
    if len(shape) != 3:
        raise InputError(f"block prediction of volumes reads one channel (Z, Y, X), not "
                         f"shape {shape}: choose one channel")
    predictor.check_volume(data)
    block = block_shape(block, shape, predictor.smallest)
    chunks = block if chunks is None else tuple(min(int(c), n) for c, n in zip(chunks, shape))
    if any(b % c and b != n for b, c, n in zip(block, chunks, shape)):
        raise InputError(f"the block {block} is not a multiple of the chunks {chunks}: "
                         "blocks written at once must not share a chunk")
    targets = {"labels": Path(out)}
    for kind, path in (("probabilities", probabilities), ("uncertainty", uncertainty)):
        if path is not None:
            targets[kind] = Path(path)
    for target in targets.values():
        if os.path.lexists(target) and not overwrite:
            raise InputError(f"{target} exists; give --overwrite to replace it")
    scale = list(voxel_size) if voxel_size is not None else [1.0, 1.0, 1.0]
    grid = BoxGrid(shape, block)
    splits = instances and predictor.splits_instances
    job = VolumeJob(source=volume, grid=grid, voxel_size=voxel_size,
                    stats=predictor.bundle.normalisation.stats(_sample(data)),
                    halo=tuple(int(h) for h in halo), labels="", instances=instances,
                    splits=splits, object_halo=tuple(int(h) for h in object_halo),
                    options=_options(predictor))
    k = predictor.bundle.n_classes
    temps = {kind: temp_beside(path) for kind, path in targets.items()}
    made = list(temps.values())
    scratch = None
    try:
        job.labels = create_group(temps["labels"], targets["labels"].name, shape, chunks,
                                  np.uint32 if instances else np.uint8, "zyx", scale,
                                  labels=True)
        if "probabilities" in temps:
            job.probabilities = create_group(
                temps["probabilities"], targets["probabilities"].name, (k, *shape),
                (k, *chunks), np.float32, "czyx", [1.0, *scale], labels=False)
        if "uncertainty" in temps:
            job.uncertainty = create_group(temps["uncertainty"], targets["uncertainty"].name,
                                           shape, chunks, np.float32, "zyx", scale,
                                           labels=False)
        if instances:
            scratch = temp_beside(Path(out).with_name(Path(out).name + "-scratch"))
            made.append(scratch)
            for name, dtype in (("classes", np.uint8), ("seeds", np.uint32)):
                job.scratch[name] = create_group(scratch / name, name, shape, chunks,
                                                 dtype, "zyx", scale, labels=False)
        runner = (LocalRunner(predictor, progress) if client is None
                  else ClusterRunner(client, predictor.bundle, progress))
        blocks = range(len(grid))
        runner.map("blocks", predict_task, blocks, job)
        objects = None
        if instances:
            sizes = runner.map("seeds", seeds_task, blocks, job)
            objects = number_objects(runner, job, sizes, (faces_task, watershed_task,
                                                          relabel_task), len(grid),
                                     watershed=True, min_size=min_size, seed_size=1)
        for kind, target in targets.items():
            put_in_place(temps[kind], target, overwrite)
            made.remove(temps[kind])
    finally:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        for path in list(opened):
            if any(path.startswith(str(t)) for t in [*temps.values(), scratch] if t):
                opened.pop(path, None)
        if client is None:
            close_sources()
    largest = max(int(np.prod([s.stop - s.start for s in grid.box(i, job.halo)]))
                  for i in range(len(grid)))
    return VolumeBlocksResult(targets["labels"], targets.get("probabilities"), len(grid),
                              largest, objects, targets.get("uncertainty"))


def _sample(data) -> np.ndarray:
    """Values of the volume for its normalisation (:func:`sample_chunks`), read in this
    thread: with a distributed client a dask array would otherwise be computed by the
    cluster, which cannot be sent the open files of the input."""
    import dask

    with dask.config.set(scheduler="synchronous"):
        return sample_chunks(data)


def _options(predictor: VolumePredictor) -> dict:
    """Keyword arguments that rebuild ``predictor`` on a worker."""
    return {"device": predictor.device.type, "tile": predictor.tile,
            "margin": predictor.margin, "tile_voxels": predictor.tile_voxels,
            "foreground_threshold": predictor.foreground_threshold,
            "rescale": predictor.rescale, "mixed_precision": predictor.mixed_precision}
