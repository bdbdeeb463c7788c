"""``predict`` of a volume with a 3D model block by block into OME-Zarr outputs (labels
or 3D objects, probabilities, uncertainty), in this process or on a dask cluster; the
in-memory volume commands are in :mod:`.volumes`."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from napari_unet.core.config import VOLUME_BLOCK
from napari_unet.core.errors import NapariUnetError


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        sys.stderr.write(text + "\n")


def block_route(args: argparse.Namespace) -> bool:
    """Whether ``predict`` of a volume goes block by block: an OME-Zarr output, or a
    cluster."""
    from napari_unet.core.io.lazy import is_zarr_path

    outputs = (args.out, args.probabilities, args.uncertainty)
    return (args.workers is not None or args.scheduler is not None
            or any(p is not None and is_zarr_path(p) for p in outputs))


def predict_volume_blocks(args: argparse.Namespace, bundle, image, voxel, why: str,
                          make_predictor) -> int:
    """A volume block by block into OME-Zarr outputs (labels or 3D objects,
    probabilities, uncertainty), in this process or on a dask cluster (``--workers``,
    ``--scheduler``), by the predictor ``make_predictor()`` builds; everything is
    checked, and the scheduler reached, before any work."""
    import time
    from contextlib import nullcontext

    from napari_unet.core.io.lazy import LazySource, is_zarr_path
    from napari_unet.core.io.selection import select_for_model
    from napari_unet.core.io.tiff import is_tiff_path
    from napari_unet.core.predict.plan import check_block_outputs
    from napari_unet.core.predict.volume_blocks import block_shape
    from napari_unet.core.predict.volume_blocks import predict_volume_blocks as run

    from .common import BlockProgress

    outputs = [("--out", args.out), ("--probabilities", args.probabilities),
               ("--uncertainty", args.uncertainty)]
    for option, path in outputs:
        if path is not None and not is_zarr_path(path):
            raise NapariUnetError(f"{option} {path}: a volume predicted block by block (an "
                                  "OME-Zarr output or a cluster) writes every output as "
                                  "OME-Zarr (NAME.ome.zarr)")
    source_path = args.image[0]
    check_block_outputs(outputs, [("--image", source_path), ("--model", args.model)],
                        args.overwrite)
    predictor = make_predictor()
    predictor.check_volume(image.data)
    block = block_shape(args.block_size if args.block_size is not None else VOLUME_BLOCK,
                        tuple(np.shape(image.data)[-3:]), predictor.smallest)
    source = LazySource(str(source_path), args.series if is_tiff_path(source_path) else None,
                        select_for_model, (args.channels, args.channels_flag,
                                           getattr(bundle, "channels", None)),
                        missing_chunks=args.missing_chunks)
    cluster = args.workers is not None or args.scheduler is not None
    if cluster:
        from napari_unet.core.predict.cluster import connect

        context = connect(args.workers, args.scheduler)
    else:
        context = nullcontext()
    started = time.perf_counter()
    progress = BlockProgress(args.quiet)
    try:
        with context as client:  # reached (or started) before anything is written
            _say(args, f"3D, block by block ({' x '.join(map(str, block))} voxels): {why}")
            result = run(predictor, source, args.out, voxel_size=voxel, block=block,
                         probabilities=args.probabilities, uncertainty=args.uncertainty,
                         instances=args.instances, min_size=args.min_size,
                         overwrite=args.overwrite, client=client, progress=progress)
    finally:
        progress.close()
    what = (f"{result.objects} 3D objects" if args.instances
            else f"{bundle.n_classes} classes")
    _say(args, f"wrote {args.out} ({what}, {result.blocks} blocks, "
              f"{time.perf_counter() - started:.1f} s)")
    return 0
