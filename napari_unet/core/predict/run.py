"""Run a :class:`~.plan.PredictionPlan` whose outputs are files, whichever its route.

Each function runs one route and returns what it wrote (:class:`Written`) or, for many
files, each file's :class:`~.files.FileResult`; the command line reports them. Into
layers, the plugin's workers run the same routes (:mod:`.tiles`, :mod:`.slices`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.config import BLOCK_SIZE, CHUNK_SIZE
from napari_unet.core.io.lazy import fits_in_memory, is_zarr_path, open_image
from napari_unet.core.io.temporary import make_folder, remove_stale, temporary_name
from napari_unet.core.io.tiff import write_tiff
from napari_unet.core.labels import labels_dtype
from napari_unet.core.predict.plan import PredictionPlan, Route

Progress = Callable[[int, int], None]


@dataclass
class Written:
    """What a run of one image wrote."""

    out: Path
    shape: tuple[int, ...]
    slices: int  # the slices of the image (1 for a 2D image)
    objects: int | None = None  # with instances
    resized: dict[int, float] = field(default_factory=dict)  # slices predicted resized
    seconds: float = 0.0


def _scale(image, ndim: int):
    return image.scale if len(image.scale) == ndim else None


def run_in_memory(plan: PredictionPlan, predictor, progress: Progress | None = None
                  ) -> Written:
    """:attr:`Route.MEMORY`: predict the image whole and write the TIFF outputs."""
    assert plan.route is Route.MEMORY and plan.out is not None
    started = time.perf_counter()
    image, opts = plan.image, plan.options
    result = predictor.predict(image.data, probabilities=plan.probabilities is not None,
                               instances=opts.instances, min_size=opts.min_size,
                               progress=progress,
                               uncertainty=plan.uncertainty is not None).shaped(image.shape)
    labels = result.instances if opts.instances else result.labels
    write_tiff(plan.out, labels, scale=_scale(image, labels.ndim))
    if plan.probabilities is not None:
        write_tiff(plan.probabilities, result.probabilities)
    if plan.uncertainty is not None:
        write_tiff(plan.uncertainty, result.uncertainty,
                   scale=_scale(image, result.uncertainty.ndim))
    n = 1 if len(image.shape) == 2 else image.shape[0]
    return Written(plan.out, tuple(image.shape), n,
                   int(labels.max()) if opts.instances else None, result.resized(),
                   time.perf_counter() - started)


def run_slices(plan: PredictionPlan, predictor, progress: Progress | None = None) -> Written:
    """:attr:`Route.SLICES`: read, predict and write the image one slice at a time
    (:func:`~.slices.predict_slices`); the labels are held whole only when they fit in
    memory, else in a temporary zarr folder beside the output, written to the TIFF plane
    by plane."""
    from napari_unet.core.io.sparse import write_labels_tiff
    from napari_unet.core.predict.slices import predict_slices

    assert plan.route is Route.SLICES and plan.out is not None
    started = time.perf_counter()
    image, opts, out = plan.image, plan.options, plan.out
    data = image.data
    shape = tuple(data.shape)
    dtype = labels_dtype(None if opts.instances else plan.bundle.n_classes - 1, opts.instances)
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    scratch = None
    if fits_in_memory(nbytes):
        labels = np.zeros(shape, dtype)
    else:
        import zarr

        out.parent.mkdir(parents=True, exist_ok=True)
        scratch = make_folder(out)
        labels = zarr.create_array(str(scratch), shape=shape, dtype=dtype, fill_value=0,
                                   chunks=(1,) * (len(shape) - 2) + tuple(
                                       min(s, 1024) for s in shape[-2:]))
    objects = 0

    def write(z: int, plane) -> None:
        nonlocal objects
        objects = max(objects, int(plane.max()) if plane.size else 0)
        if len(shape) == 2:
            labels[...] = plane
        else:
            labels[z] = plane

    resized: dict[int, float] = {}
    try:
        predict_slices(predictor, data, write, instances=opts.instances,
                       min_size=opts.min_size, progress=progress, resized=resized)
        if scratch is None:
            write_tiff(out, labels, scale=_scale(image, len(shape)))
        else:
            write_labels_tiff(out, labels, scale=_scale(image, len(shape)))
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return Written(out, shape, 1 if len(shape) == 2 else shape[0],
                   objects if opts.instances else None, resized,
                   time.perf_counter() - started)


def run_blocks(plan: PredictionPlan, predictor,
               progress: Callable[[str, int, int], None] | None = None) -> Written:
    """:attr:`Route.BLOCKS`: predict the image block by block (:func:`~.blocks.predict_blocks`),
    in this process or on the plan's cluster; OME-Zarr outputs are written chunk by chunk,
    TIFF outputs through a temporary OME-Zarr beside them."""
    from napari_unet.core.predict.blocks import predict_blocks

    assert plan.route is Route.BLOCKS and plan.out is not None
    started = time.perf_counter()
    opts = plan.options
    shape = tuple(plan.image.data.shape)
    scale = _scale(plan.image, len(shape))
    outputs = [(k, p) for k, p in (("labels", plan.out), ("probabilities", plan.probabilities),
                                   ("uncertainty", plan.uncertainty)) if p is not None]
    for _kind, path in outputs:
        remove_stale(path)  # what killed runs left for these outputs
    targets = {k: (p if is_zarr_path(p) else temporary_name(p)) for k, p in outputs}
    if plan.cluster:
        from napari_unet.core.predict.cluster import connect

        context: Any = connect(opts.workers, opts.scheduler)
    else:
        context = nullcontext()
    try:
        with context as client:
            result = predict_blocks(
                predictor, plan.source, targets["labels"],
                probabilities_path=targets.get("probabilities"),
                uncertainty_path=targets.get("uncertainty"),
                instances=opts.instances, min_size=opts.min_size, scale=scale,
                chunk=opts.chunk or CHUNK_SIZE, block=opts.block or BLOCK_SIZE,
                overwrite=opts.overwrite, client=client, progress=progress)
        for kind, path in outputs:
            if is_zarr_path(path):
                continue
            data = open_image(targets[kind], lazy=False).data
            if kind in ("labels", "uncertainty"):
                write_tiff(path, data, scale=scale)
            else:
                write_tiff(path, data.transpose(1, 0, 2, 3) if data.ndim == 4 else data)
    finally:
        for kind, path in outputs:
            if targets[kind] != path:
                shutil.rmtree(targets[kind], ignore_errors=True)
    return Written(plan.out, shape, 1 if len(shape) == 2 else shape[0], result.objects,
                   seconds=time.perf_counter() - started)


def run_files(plan: PredictionPlan, make_predictor: Callable[[], Any], read: Callable,
              on_result: Callable | None = None) -> list:
    """:attr:`Route.FILES`: predict every file still to do (:func:`~.files.run_job`),
    in this process or on the plan's cluster (:func:`~.cluster.run_on_cluster`);
    ``on_result(result)`` follows each file. ``read`` (picklable) reads one file;
    ``make_predictor()`` builds the predictor of this process."""
    from napari_unet.core.predict.files import Settings, run_job

    assert plan.route is Route.FILES
    for folder in {plan.out, plan.probabilities} - {None}:
        folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(instances=plan.options.instances, min_size=plan.options.min_size)
    results: list = []

    def report(result) -> None:
        results.append(result)
        if on_result is not None:
            on_result(result)

    if plan.cluster:
        from napari_unet.core.predict.cluster import run_on_cluster

        run_on_cluster(plan.todo, plan.bundle, plan.predictor_options(), settings, read,
                       workers=plan.options.workers, scheduler=plan.options.scheduler,
                       on_result=report)
    elif plan.todo:
        predictor = make_predictor()
        for job in plan.todo:
            report(run_job(job, predictor, settings, read))
    return results
