"""The memory and disk a prediction run needs, against what this computer has, before any
work: an input that declares more than the run can hold is refused with the numbers.

What counts is what each route holds at once: a whole image (in memory), one plane and
its float32 work (slice by slice), one stored strip or tile of a TIFF (any read of a
part of it reads it whole), a TIFF output built whole from blocks; and on disk at least
what the best compression leaves of the labels. The lazy routes keep working for images
that are truly large: their need does not grow with the number of planes or blocks.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.declared import human_bytes, shape_text
from napari_unet.core.io.lazy import available_memory, is_zarr_path

#: zlib (deflate) cannot compress better than about 1032 to 1: a TIFF of labels takes at
#: least this share of their bytes on disk.
DEFLATE_BEST = 1 / 1032
#: A stored strip or tile is read whole, into memory, with a copy while it is decoded.
CHUNK_COPIES = 2


def free_disk(path: Path) -> int | None:
    """The bytes free in the folder that ``path`` will be written to (its nearest existing
    parent), or ``None`` when the system does not say."""
    folder = Path(os.path.abspath(path)).parent
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def plane_bytes(shape: tuple[int, ...], itemsize: int, n_classes: int) -> float:
    """What predicting one plane (the last two axes) holds at once: the plane, its float32
    copy, the probabilities of every class, the tile weights and the labels."""
    pixels = float(shape[-1]) * float(shape[-2])
    return pixels * (itemsize + 4 * (n_classes + 2) + 4)


def _need(name: str, what: str, need: float, have: int | None, advice: str) -> None:
    if have is not None and need > have:
        raise InputError(f"{name}: {what} needs about {human_bytes(need)}, and "
                         f"{human_bytes(have)} are available; {advice}")


def tiff_chunk_bytes(path: Path, series: int | None) -> tuple[int, str] | None:
    """The bytes of the largest strip or tile of a TIFF series in memory and what it is,
    or ``None`` for a file that is not a TIFF (or cannot tell)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            chosen = tif.series[series or 0]
            page = chosen.keyframe
            itemsize = np.dtype(chosen.dtype).itemsize
            samples = int(getattr(page, "samplesperpixel", 1) or 1)
            if page.is_tiled:
                tile = (int(page.tilelength), int(page.tilewidth))
                return tile[0] * tile[1] * itemsize * samples, f"tiles of {shape_text(tile)}"
            rows = min(int(page.rowsperstrip or page.imagelength), int(page.imagelength))
            strip = rows * int(page.imagewidth) * itemsize * samples
            what = ("one strip" if rows >= int(page.imagelength)
                    else f"strips of {rows} rows")
            return strip, f"its {shape_text((page.imagelength, page.imagewidth))} planes " \
                          f"as {what}"
    except Exception:  # the reader says what is wrong with the file
        return None


def check_input_chunks(path: Path, series: int | None, name: str) -> None:
    """Refuse a TIFF whose strips or tiles are too large to read one at a time."""
    found = tiff_chunk_bytes(path, series)
    if found is None:
        return
    nbytes, what = found
    _need(name, f"reading any part of it (it stores {what}, read whole)",
          nbytes * CHUNK_COPIES, available_memory(),
          "it cannot be read here: save it tiled (for example 1024 x 1024 tiles, "
          "tifffile.imwrite(..., tile=(1024, 1024)) or Fiji's Bio-Formats export)")


def check_slices(name: str, shape: tuple[int, ...], dtype, n_classes: int,
                 out: Path | None) -> None:
    """The slice-by-slice route: one plane and its work must fit, and the TIFF output,
    written plane by plane, must fit on the disk."""
    itemsize = np.dtype(dtype).itemsize
    _need(name, f"predicting one {shape_text(shape[-2:])} plane at a time",
          plane_bytes(shape, itemsize, n_classes), available_memory(),
          "write an OME-Zarr (--out NAME.ome.zarr), which is predicted block by block")
    if out is not None and not is_zarr_path(out):
        labels = math.prod(float(n) for n in shape)
        _need(name, f"a TIFF output of {shape_text(shape)} labels (written plane by "
              "plane, each plane whole)", float(shape[-1]) * float(shape[-2]) * 2,
              available_memory(), "write an OME-Zarr (--out NAME.ome.zarr) instead")
        _need(name, f"its labels as a TIFF on disk ({human_bytes(labels)} before "
              "compression) at the very least", labels * DEFLATE_BEST, free_disk(out),
              f"free space in {Path(os.path.abspath(out)).parent} or write elsewhere")


def check_tiff_from_blocks(name: str, option: str, target: Path, nbytes: float) -> None:
    """A TIFF output of the block route is built whole in memory before it is written."""
    _need(name, f"{option} {target} as a TIFF (built whole in memory)", nbytes * 2,
          available_memory(),
          f"write an OME-Zarr instead ({Path(target).name.split('.')[0]}.ome.zarr), "
          "which is written chunk by chunk")
    _need(name, f"{option} {target} on disk at the very least", nbytes * DEFLATE_BEST,
          free_disk(target), "free space or write elsewhere")
