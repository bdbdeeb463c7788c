"""Predicting an image larger than memory block by block into a chunked OME-Zarr.

The image (2D, or a Z stack of 2D slices: the 2D model is applied per slice) is any
array-like with ``shape``, ``dtype`` and slicing: a numpy array, a zarr array, a dask
array, or a :class:`~napari_unet.core.io.lazy.LazySource` that each process opens itself (through
:func:`~napari_unet.core.io.lazy.open_image`, like every other reader of images). It is cut into blocks of
whole output chunks (one slice deep); each block reads only the pixels its tiles need.

**The same numbers as one process.** Every block uses the tile layout that
:class:`~.tiles.Predictor` uses for the whole slice (the same tiles, mirrored borders
and blending weights), computing only the tiles that cover it, so a pixel's
probabilities do not depend on the blocks (slices of up to
:data:`~.tiles.BAND_PIXELS` pixels, which one process predicts in one piece). The
percentiles of each slice are taken from the same sample of about two million pixels as
:meth:`~napari_unet.core.normalise.Normalisation.stats` takes from the whole slice, read band by band,
and every block of the slice uses them. A block that holds a whole slice costs nothing
more; blocks smaller than a slice recompute the tiles that straddle their edges.

**Objects across blocks.** Each block numbers its seeds from 1: for models trained on
instance masks (background / interior / boundary) their sure interiors
(:func:`~napari_unet.core.decision.interior_seeds`), for others the cores of each class's
region (:func:`~napari_unet.core.predict.objects.object_cores`) found over the block and a
halo of context around it (:data:`WATERSHED_HALO` pixels). Block offsets make the ids
unique over the image (and across slices); a union-find over the seed pixels that touch
across block faces (8-connectivity, same class) joins the pieces of one seed; a
watershed computed per block over the block and its halo grows them (on p(boundary) -
p(interior), or each class's distance transform), so a seed cut by a block edge is one
object on both sides and touching objects stay apart; a last pass renumbers every block
(1..N, objects smaller than ``min_size`` dropped, as one process drops them). The result
is that of one process unless an object reaches further than the halo beyond a block
edge.

**Memory** holds a few blocks (the input, its probabilities, the labels), never the
image. Outputs are written into a temporary folder beside the target and renamed into
place when complete; a failure removes it and leaves nothing behind. They are OME-Zarr
groups that :func:`~napari_unet.core.io.lazy.open_image` reads back (axes, pixel size, labels hint).

The same passes run in this process or as tasks on dask.distributed workers
(:func:`predict_blocks` with a client), which write their blocks to the shared zarr.
The tasks each block runs are in :mod:`.block_tasks`, the regions and their probabilities
in :mod:`.regions`, the joining of objects in :mod:`.stitch`, the OME-Zarr outputs in
:mod:`~napari_unet.core.io.ngff`; this module plans and runs the tasks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.config import BLOCK_SIZE, CHUNK_SIZE, MIN_OBJECT_SIZE
from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import close_sources
from napari_unet.core.io.ngff import create_group, opened, put_in_place, temp_beside
from napari_unet.core.labels import labels_dtype
from napari_unet.core.predict.block_tasks import (
    WATERSHED_HALO,
    Job,
    faces_task,
    predict_task,
    relabel_task,
    seeds_task,
    stats_task,
    watershed_task,
)
from napari_unet.core.predict.regions import BlockGrid, open_source, shape3
from napari_unet.core.predict.stitch import join, keep_numbered

ProgressCallback = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- running
class LocalRunner:
    """Runs the tasks of a block prediction one after the other in this process."""

    def __init__(self, predictor, progress: ProgressCallback | None):
        self.model, self.progress = predictor, progress

    def map(self, what: str, fn, items: Sequence, job: Job) -> list:
        out = []
        for k, item in enumerate(items, start=1):
            out.append(fn(item, job, self.model))
            if self.progress is not None:
                self.progress(what, k, len(items))
        return out


class ClusterRunner:
    """Runs them as tasks on a dask client's workers (the model sent to each once)."""

    def __init__(self, client, bundle, progress: ProgressCallback | None):
        self.client, self.progress = client, progress
        self.model = client.scatter(bundle, broadcast=True, hash=False)

    def map(self, what: str, fn, items: Sequence, job: Job) -> list:
        from distributed import as_completed

        if not items:
            return []
        job_future = self.client.scatter(job, broadcast=True, hash=False)
        futures = self.client.map(fn, list(items), job=job_future, model=self.model,
                                  pure=False)
        for k, _ in enumerate(as_completed(futures), start=1):
            if self.progress is not None:
                self.progress(what, k, len(items))
        try:
            return self.client.gather(futures)
        except Exception as exc:  # a task or its worker failed: one sentence
            from napari_unet.core.errors import PredictionError

            detail = str(exc).splitlines()[0][:200] if str(exc) else ""
            raise PredictionError(f"a block failed on the cluster while computing {what} "
                                  f"({type(exc).__name__}: {detail})") from None


@dataclass
class BlockResult:
    """What :func:`predict_blocks` wrote."""

    labels: Path
    probabilities: Path | None
    shape: tuple[int, ...]
    objects: int | None  # with instances
    uncertainty: Path | None = None


def predict_blocks(
    predictor,
    image: Any,
    labels_path: str | os.PathLike,
    *,
    probabilities_path: str | os.PathLike | None = None,
    uncertainty_path: str | os.PathLike | None = None,
    instances: bool = False,
    min_size: int = MIN_OBJECT_SIZE,
    scale: Sequence[float] | None = None,
    chunk: int = CHUNK_SIZE,
    block: int = BLOCK_SIZE,
    halo: int = WATERSHED_HALO,
    overwrite: bool = False,
    client: Any = None,
    progress: ProgressCallback | None = None,
) -> BlockResult:
    """Predict ``image`` block by block into OME-Zarr groups at ``labels_path`` (classes,
    or with ``instances`` one uint32 id per object over the whole image),
    ``probabilities_path`` (float32, axes ``c[z]yx``) and ``uncertainty_path`` (each
    pixel's :func:`~.uncertainty.class_entropy`, float32, chunked like the labels).

    ``predictor`` is a :class:`~.tiles.Predictor`. ``block`` is rounded up to a
    multiple of ``chunk``. With a dask ``client`` the blocks are tasks on its workers
    (which must see the input and the output folders); the model is sent to each worker
    once. ``progress(what, done, total)`` is called as tasks finish.
    """
    labels_path = Path(labels_path)
    probabilities_path = None if probabilities_path is None else Path(probabilities_path)
    uncertainty_path = None if uncertainty_path is None else Path(uncertainty_path)
    data = open_source(image)
    shape = shape3(data.shape)
    two_d = len(data.shape) == 2
    if predictor.bundle.config.in_channels != 1:
        raise InputError("napari-unet predicts images with one channel")
    for path in (labels_path, probabilities_path, uncertainty_path):
        if path is not None and os.path.lexists(path) and not overwrite:
            raise InputError(f"{path} exists; give --overwrite to replace it")
    chunk = max(16, int(chunk))
    block = max(chunk, -(-int(block) // chunk) * chunk)
    grid = BlockGrid(shape, (block, block))
    splits = instances and predictor.splits_instances
    n_classes = predictor.n_classes
    axes = "yx" if two_d else "zyx"
    scale = list(scale) if scale is not None and len(scale) == len(axes) else [1.0] * len(axes)
    chunks = (chunk, chunk) if two_d else (1, chunk, chunk)
    temps: list[Path] = []  # removed at the end: what is not in place yet, the scratch
    created: list[Path] = []
    try:
        tmp_labels = temp_beside(labels_path)
        temps.append(tmp_labels)
        created.append(tmp_labels)
        label_dtype = labels_dtype(None if instances else n_classes - 1, instances)
        job = Job(source=image, grid=grid, two_d=two_d,
                  labels=create_group(tmp_labels, labels_path.name, data.shape, chunks,
                                      label_dtype, axes, scale, labels=True),
                  probabilities=None, instances=instances, splits=splits, halo=halo,
                  options=_options(predictor))
        if probabilities_path is not None:
            tmp_probs = temp_beside(probabilities_path)
            temps.append(tmp_probs)
            created.append(tmp_probs)
            job.probabilities = create_group(tmp_probs, probabilities_path.name,
                                             (n_classes, *data.shape), (1, *chunks),
                                             np.float32, "c" + axes, [1.0, *scale],
                                             labels=False)
        if uncertainty_path is not None:
            tmp_unc = temp_beside(uncertainty_path)
            temps.append(tmp_unc)
            created.append(tmp_unc)
            job.uncertainty = create_group(tmp_unc, uncertainty_path.name, data.shape,
                                           chunks, np.float32, axes, scale, labels=False)
        if instances:
            scratch = temp_beside(labels_path.with_name(labels_path.name + "-scratch"))
            temps.append(scratch)
            created.append(scratch)
            kinds = {"classes": np.uint8, "seeds": np.uint32}
            if splits:
                kinds.update(relief=np.float32)
            for name, dtype in kinds.items():
                job.scratch[name] = create_group(scratch / name, name, data.shape, chunks,
                                                 dtype, axes, scale, labels=False)
        runner = (LocalRunner(predictor, progress) if client is None
                  else ClusterRunner(client, predictor.bundle, progress))
        if shape[1] > block or shape[2] > block:  # blocks smaller than a slice
            job.stats = runner.map("percentiles", stats_task, range(shape[0]), job)
        blocks = range(len(grid))
        sizes = runner.map("blocks", predict_task, blocks, job)
        objects = None
        if instances:
            if not splits:
                sizes = runner.map("seeds", seeds_task, blocks, job)
            objects = number_objects(runner, job, sizes, (faces_task, watershed_task,
                                                          relabel_task), len(grid),
                                     watershed=True, min_size=min_size,
                                     seed_size=None if splits else 1)
        put_in_place(tmp_labels, labels_path, overwrite)
        temps.remove(tmp_labels)
        if probabilities_path is not None:
            put_in_place(tmp_probs, probabilities_path, overwrite)
            temps.remove(tmp_probs)
        if uncertainty_path is not None:
            put_in_place(tmp_unc, uncertainty_path, overwrite)
            temps.remove(tmp_unc)
        return BlockResult(labels_path, probabilities_path, tuple(data.shape), objects,
                           uncertainty_path)
    finally:
        for path in temps:
            shutil.rmtree(path, ignore_errors=True)
        for path in list(opened):
            if any(path.startswith(str(t)) for t in created):
                opened.pop(path, None)
        if client is None:
            close_sources()  # the input files this process opened


def number_objects(runner, job, sizes: list, tasks: tuple, n_blocks: int, *,
                   watershed: bool, min_size: int, seed_size: int | None = None) -> int:
    """Give the objects of every block one id over the whole image, the same for 2D blocks
    and volume blocks: ``sizes`` are the sizes of each block's own components (of the
    seeds with ``watershed``), numbered from 1 in each block; ``tasks`` are the
    (faces, watershed, relabel) tasks of the blocks. Block offsets make the ids global,
    the pairs that touch across faces join the pieces of one object (union-find), then
    the watershed (grown from the joined seeds over each block and its halo) and the
    renumbering 1..N, objects smaller than ``min_size`` dropped (seeds smaller than
    ``seed_size``, by default half of it, before the watershed). Returns N."""
    faces, grow, relabel = tasks
    blocks = range(n_blocks)
    counts = np.array([len(s) - 1 for s in sizes], np.int64)
    job.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n = int(counts.sum())
    all_sizes = np.zeros(n + 1, np.float64)
    for off, s in zip(job.offsets, sizes):
        all_sizes[off + 1 : off + len(s)] = s[1:]
    pairs = runner.map("edges", faces, blocks, job)
    component = join(n, np.concatenate(pairs) if pairs else np.zeros((0, 2), int))
    if watershed:
        seed_size = max(1, min_size // 2) if seed_size is None else seed_size
        job.seed_map = keep_numbered(component, all_sizes, seed_size)
        k = int(job.seed_map.max(initial=0))
        found = runner.map("watershed", grow, blocks, job)
        totals = np.zeros(k + 1, np.float64)
        for ids, cnt in found:
            np.add.at(totals, ids.astype(np.int64), cnt)
        job.final_map = keep_numbered(np.arange(k + 1), totals, min_size)
    else:
        job.final_map = keep_numbered(component, all_sizes, min_size)
    runner.map("numbering", relabel, blocks, job)
    return int(job.final_map.max(initial=0))


def _options(predictor) -> dict:
    """Keyword arguments that rebuild ``predictor`` on a worker."""
    return {"device": predictor.device.type,
            "tile_size": predictor.tile_size, "overlap": predictor.overlap,
            "batch_size": None if predictor.batch_pixels is not None else predictor.batch_size,
            "mixed_precision": predictor.mixed_precision, "tta": predictor.tta,
            "foreground_threshold": predictor.foreground_threshold}
