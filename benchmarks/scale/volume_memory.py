"""Memory and speed of a volume larger than memory, predicted block by block into OME-Zarr.

A uint16 volume of ``--shape`` (default 512 x 1024 x 1024, 1 GiB) is generated lazily as
a dask array (every chunk made when it is read, never the whole volume in memory) and
written, chunk by chunk and untimed, into an OME-Zarr in ``--workdir`` (chunks of one
block). That file is opened as ``napari-unet predict`` opens one (lazily) and predicted
block by block (``core/predict/volume_blocks.py``) by a fresh 3D model of the CPU
defaults (16 base channels, depth 3, pooling for the voxel size; its weights change
neither the memory nor the time) into another OME-Zarr. ``--from-generator`` predicts
from the generator itself instead: it makes each chunk again whenever a block's halo
reads it (about 1.8 s a chunk on 2 cores, 8 s a block), a cost no file has. The table
gives the shape, the blocks, seconds, voxels per second and the peak resident memory of
this process (``/proc/self/status`` VmRSS sampled in a thread) against the issue's target
of 2 GB, and its time per voxel against one untiled pass of a volume that fits in memory
(``--baseline-shape``, default 32 x 256 x 256, the same model, measured after it in the
same run; target 1.3x). ``--instances`` adds the 3D objects (seeds, faces, watershed),
``--uncertainty`` the uncertainty output; ``--halo`` sets the context of each block.

    python benchmarks/scale/volume_memory.py --shape 64 256 256      # under a minute
    python benchmarks/scale/volume_memory.py        # the full run: about 22 min on a 2-core Zen 3
    python benchmarks/scale/volume_memory.py --shape 72 544 544 --block 72 544 544 --tile-mb 384
                                                    # one block with its halo, a tile budget
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common

import argparse
import shutil
import tempfile
import time

import numpy as np
from _common import PeakRSS, add_smoke, table

#: The issue's target for the peak memory of the full run.
TARGET_GB = 2.0


def lazy_volume(shape: tuple[int, int, int], chunks: tuple[int, int, int], seed: int = 0):
    """A dask uint16 volume of bright blobs on noise, each chunk made when read."""
    import dask.array as da

    def make(block_info=None):
        # plane by plane in float32, as a reader decodes a chunk: no temporary of the
        # chunk's size in float64 counts towards the peak of the prediction
        info = block_info[None]
        (z0, z1), (y0, y1), (x0, x1) = info["array-location"]
        rng = np.random.default_rng([seed, z0, y0, x0])
        y, x = np.ogrid[y0:y1, x0:x1]
        yx = (np.sin(y / 9.0) * np.sin(x / 9.0)).astype(np.float32)
        out = np.empty((z1 - z0, y1 - y0, x1 - x0), np.uint16)
        for i, z in enumerate(range(z0, z1)):
            blobs = (np.float32(np.sin(z / 3.0)) * yx) > 0.3
            out[i] = 200 + 1500 * blobs + rng.poisson(50, yx.shape).astype(np.uint16)
        return out

    return da.map_blocks(make, dtype=np.uint16, chunks=tuple(
        tuple(min(c, n - s) for s in range(0, n, c)) for n, c in zip(shape, chunks)))


def fresh_model(voxel_size):
    """An untrained 3D model of the CPU defaults at ``voxel_size``."""
    from napari_unet.core.config import volume_defaults
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from napari_unet.core.train.volume_data import VOLUME_NORMALISATION
    from napari_unet.core.voxels import volume_pools

    d = volume_defaults("cpu")
    config = UNetConfig(1, 2, d.base_channels, d.depth, dims=3,
                        pools=volume_pools(voxel_size, d.depth))
    return ModelBundle.new(config, "annotation", seed=0, voxel_size=voxel_size,
                           normalisation=VOLUME_NORMALISATION)


def as_ome_zarr(volume, path: Path, voxel) -> tuple[object, float]:
    """``volume`` written chunk by chunk into an OME-Zarr at ``path`` (its chunks), and
    opened again as ``napari-unet predict`` opens one: lazily. Returns the opened
    volume and the seconds the writing took."""
    import zarr

    from napari_unet.core.io.lazy import open_image
    from napari_unet.core.io.ngff import create_group

    started = time.perf_counter()
    shutil.rmtree(path, ignore_errors=True)
    chunks = tuple(c[0] for c in volume.chunks)
    array = zarr.open_array(create_group(path, "volume", volume.shape, chunks, volume.dtype,
                                         "zyx", voxel, labels=False), mode="r+")
    for index in np.ndindex(*volume.numblocks):
        part = np.asarray(volume.blocks[index])
        array[tuple(slice(i * c, i * c + n) for i, c, n in zip(index, chunks, part.shape))] = part
    seconds = time.perf_counter() - started
    return open_image(path, lazy=True).data, seconds


def one_pass_rate(bundle, voxel, shape, device: str, repeats: int = 3) -> float:
    """Voxels per second of one untiled pass (normalisation, model, probabilities) of a
    volume of ``shape`` in memory: the best of ``repeats`` after a first call."""
    from napari_unet.core.predict.volume import VolumePredictor

    volume = np.asarray(lazy_volume(shape, shape).compute())
    whole = VolumePredictor(bundle, device=device, tile_voxels=10**12)
    whole.probabilities(volume, voxel)
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        whole.probabilities(volume, voxel)
        best = min(best, time.perf_counter() - started)
    return float(np.prod(shape)) / best


def cpu_name() -> str:
    from napari_unet.core.models.speed import cpu_name as name

    return name()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 1024, 1024],
                        metavar=("Z", "Y", "X"))
    parser.add_argument("--block", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="block (and chunk) in voxels; default the CPU default")
    parser.add_argument("--voxel-size", type=float, nargs=3, default=[0.5, 0.2, 0.2],
                        metavar=("Z", "Y", "X"))
    parser.add_argument("--instances", action="store_true", help="also the 3D objects")
    parser.add_argument("--uncertainty", action="store_true",
                        help="also write the uncertainty")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="folder for the outputs (default: a temporary folder, removed)")
    parser.add_argument("--tile-mb", type=int, default=None,
                        help="memory budget of one 3D tile in MB (default the device's "
                             "volume_defaults().tile_bytes)")
    parser.add_argument("--halo", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="context read around each block (default VOLUME_HALO)")
    parser.add_argument("--baseline-shape", type=int, nargs=3, default=[32, 256, 256],
                        metavar=("Z", "Y", "X"),
                        help="the volume that fits, predicted in one untiled pass")
    parser.add_argument("--from-generator", action="store_true",
                        help="predict from the lazy generator, not from an OME-Zarr of it")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the model's tiles)")
    add_smoke(parser)
    args = parser.parse_args(argv)
    import torch

    from napari_unet.core.config import VOLUME_BLOCK, VOLUME_HALO
    from napari_unet.core.predict.volume import VolumePredictor, tile_voxels_for
    from napari_unet.core.predict.volume_blocks import predict_volume_blocks

    if args.smoke:
        args.shape, args.block, args.baseline_shape = [8, 64, 64], [8, 32, 32], [8, 64, 64]
    shape = tuple(args.shape)
    block = tuple(min(b, n) for b, n in zip(args.block or VOLUME_BLOCK, shape))
    if args.threads:
        torch.set_num_threads(args.threads)
    voxel = tuple(args.voxel_size)
    halo = tuple(args.halo or VOLUME_HALO)
    volume = lazy_volume(shape, block)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="napari-unet-volume-memory-"))
    workdir.mkdir(parents=True, exist_ok=True)
    written = None
    if not args.from_generator:
        volume, written = as_ome_zarr(volume, workdir / "volume.ome.zarr", voxel)
    bundle = fresh_model(voxel)
    tile_voxels = tile_voxels_for(bundle, args.tile_mb * 2**20) if args.tile_mb else None
    predictor = VolumePredictor(bundle, device=args.device, tile_voxels=tile_voxels)
    out = workdir / "labels.ome.zarr"
    unc = workdir / "uncertainty.ome.zarr" if args.uncertainty else None
    try:
        with PeakRSS(every=0.02) as memory:
            started = time.perf_counter()
            result = predict_volume_blocks(predictor, volume, out, voxel_size=voxel,
                                           block=block, halo=halo, uncertainty=unc,
                                           instances=args.instances, overwrite=True)
            seconds = time.perf_counter() - started
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    base_rate = one_pass_rate(bundle, voxel, tuple(args.baseline_shape), args.device,
                              repeats=1 if args.smoke else 3)
    voxels = int(np.prod(shape))
    peak_gb = memory.peak / 1e9
    rows = [["x".join(map(str, shape)), f"{'x'.join(map(str, block))} ({result.blocks})",
             f"{seconds:.1f}", f"{voxels / seconds:,.0f}", f"{peak_gb:.2f}",
             f"{memory.mb / 1e3:.2f}", f"{TARGET_GB:.1f}",
             "yes" if peak_gb <= TARGET_GB else "no", f"{base_rate / (voxels / seconds):.2f}x"]]
    source = ("the lazy generator" if written is None else
              f"an OME-Zarr of it, opened lazily (written in {written:.0f} s, untimed)")
    what = " + 3D objects" if args.instances else ""
    what += " + uncertainty" if args.uncertainty else ""
    print(table(f"volume block by block into OME-Zarr{what}, from {source}: fresh "
                f"CPU-default 3D model, "
                f"{torch.get_num_threads()} torch thread(s), {cpu_name()}, "
                f"device {predictor.device.type}, halo {'x'.join(map(str, halo))}, "
                f"tiles of up to {predictor.tile_voxels:,} voxels; one untiled pass of "
                f"{'x'.join(map(str, args.baseline_shape))}: {base_rate:,.0f} voxels/s",
                ["shape", "block (blocks)", "seconds", "voxels/s", "peak GB", "rise GB",
                 "target GB", "within", "time/voxel vs one pass"], rows,
                [16, 22, 9, 11, 8, 8, 9, 6, 22]))
    full = 512 * 1024 * 1024
    if voxels < full:
        print(f"at {voxels / seconds:,.0f} voxels/s, 512x1024x1024 would take about "
              f"{full / (voxels / seconds) / 60:.0f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
