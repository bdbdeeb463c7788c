"""Helpers of the hostile-input tests: the real command line in a subprocess, and files
that are huge only in what they declare."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None, timeout: float = 600) -> tuple[int, str]:
    """Run ``python -m napari_unet.cli ARGS``; its exit status and stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "napari_unet.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)
    return proc.returncode, proc.stderr


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to see that nothing changed)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".tmp")]


def ome_zarr(path: Path, *, fmt: int = 2, shape=(64, 64), chunks=(32, 32),
             dtype="uint16", data: bool = True) -> Path:
    """An OME-Zarr image (NGFF 0.4 for zarr v2, 0.5 for v3) with one level ``0``."""
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=fmt)
    array = group.create_array("0", shape=shape, chunks=chunks, dtype=dtype, fill_value=0)
    if data:
        rng = np.random.default_rng(0)
        array[...] = rng.integers(1, 1000, shape).astype(dtype)
    axes = [{"name": n, "type": "space"} for n in "zyx"[-len(shape):]]
    meta = {"multiscales": [{"version": "0.4", "axes": axes, "datasets": [{"path": "0"}]}]}
    if fmt == 2:
        group.attrs.update(meta)
    else:
        group.attrs["ome"] = {"version": "0.5", **meta}
    return path


def edit_json(path: Path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def sparse_strip_tiff(path: Path, side: int) -> Path:
    """A ``side`` x ``side`` uint8 TIFF stored as one strip, written without data: the
    file declares ``side**2`` bytes but takes a few KB on disk (a sparse file)."""
    import tifffile

    tifffile.imwrite(path, shape=(side, side), dtype="uint8", rowsperstrip=side, bigtiff=True)
    return path


def tiled_zero_tiff(path: Path, side: int, tile: int = 1024) -> Path:
    """A ``side`` x ``side`` uint8 TIFF of compressed zero tiles: huge in pixels, small on
    disk (about 1 KB a tile)."""
    import tifffile

    zeros = np.zeros((tile, tile), np.uint8)
    n = math.ceil(side / tile) ** 2
    tifffile.imwrite(path, (zeros for _ in range(n)), shape=(side, side), dtype="uint8",
                     tile=(tile, tile), compression="zlib", bigtiff=True)
    return path
