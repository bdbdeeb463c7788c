"""Regions of a large image for block-wise prediction: reading a region of one slice,
the blocks of an image, the percentiles of a slice read band by band, and the class
probabilities of a region equal to those of the whole slice (the same tiles as
:class:`~.tiles.Predictor`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.normalise import SAMPLE_PIXELS

#: Rows of a slice read at once when sampling its percentiles (times its width, pixels).
BAND_PIXELS = 16 * 1024**2


def open_source(source: Any) -> Any:
    return source.open() if hasattr(source, "open") and not hasattr(source, "shape") else source


def shape3(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) == 2:
        return (1, int(shape[0]), int(shape[1]))
    if len(shape) == 3:
        return tuple(int(n) for n in shape)
    raise InputError(f"cannot predict an image of shape {tuple(shape)} block by block: use a "
                     "2D image or a Z stack of 2D slices with one channel")


def read_region(data: Any, z: int, ys: slice, xs: slice) -> np.ndarray:
    part = data[ys, xs] if len(data.shape) == 2 else data[z, ys, xs]
    if hasattr(part, "dask"):  # a dask array: read in this thread, a cluster's worker too
        part = part.compute(scheduler="synchronous")
    return np.asarray(part)


# --------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class BlockGrid:
    """The blocks of a (Z, Y, X) image: one slice deep, ``block`` pixels in Y and X."""

    shape: tuple[int, int, int]
    block: tuple[int, int]

    @property
    def counts(self) -> tuple[int, int, int]:
        z, h, w = self.shape
        return z, -(-h // self.block[0]), -(-w // self.block[1])

    def __len__(self) -> int:
        z, ny, nx = self.counts
        return z * ny * nx

    def index(self, z: int, by: int, bx: int) -> int:
        _, ny, nx = self.counts
        return (z * ny + by) * nx + bx

    def key(self, i: int) -> tuple[int, int, int]:
        _, ny, nx = self.counts
        return i // (ny * nx), (i // nx) % ny, i % nx

    def bounds(self, i: int) -> tuple[int, int, int, int, int]:
        z, by, bx = self.key(i)
        h, w = self.shape[1:]
        y0, x0 = by * self.block[0], bx * self.block[1]
        return z, y0, min(h, y0 + self.block[0]), x0, min(w, x0 + self.block[1])


# --------------------------------------------------------------------------- percentiles
def slice_stats(data: Any, z: int, normalisation) -> tuple[float, float] | None:
    """The percentiles of slice ``z`` as :meth:`Normalisation.stats` takes them from the
    whole slice (the same sample: every ``step``-th pixel), read band by band."""
    _, h, w = shape3(data.shape)
    step = max(1, (h * w) // SAMPLE_PIXELS)
    rows = max(1, BAND_PIXELS // max(1, w))
    parts = []
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        band = read_region(data, z, slice(r0, r1), slice(0, w)).reshape(-1)
        parts.append(band[(-r0 * w) % step :: step])
    return normalisation.stats(np.concatenate(parts))


# --------------------------------------------------------------------------- probabilities
def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Positions in an axis of length ``n`` of the padded positions ``index``, as
    ``np.pad(mode="symmetric")`` mirrors them."""
    j = np.mod(index, 2 * n)
    return np.where(j >= n, 2 * n - 1 - j, j)


def region_probabilities(predictor, data: Any, z: int, y0: int, y1: int, x0: int, x1: int,
                         stats: tuple[float, float] | None | str = "slice") -> np.ndarray:
    """Class probabilities (C, y1 - y0, x1 - x0) of a region of slice ``z``, equal to
    those of ``predictor.probabilities_2d`` on the whole normalised slice: the same tiles
    are computed (those that cover the region) and blended in the same order.
    ``stats="slice"`` takes the slice's percentiles (:func:`slice_stats`)."""
    _, h, w = shape3(data.shape)
    norm = predictor.bundle.normalisation
    margin, th, ys, tw, xs, window = predictor.tile_layout(h, w)
    ty = [y for y in ys if y < y1 + margin and y + th > y0 + margin]
    tx = [x for x in xs if x < x1 + margin and x + tw > x0 + margin]
    py0, py1, px0, px1 = ty[0], ty[-1] + th, tx[0], tx[-1] + tw
    rows = _reflect(np.arange(py0, py1) - margin, h)
    cols = _reflect(np.arange(px0, px1) - margin, w)
    r0, c0 = int(rows.min()), int(cols.min())
    raw = read_region(data, z, slice(r0, int(rows.max()) + 1), slice(c0, int(cols.max()) + 1))
    if isinstance(stats, str):  # the whole slice in hand, or read again band by band
        stats = norm.stats(raw) if raw.shape == (h, w) else slice_stats(data, z, norm)
    padded = norm.normalise(raw, stats)[np.ix_(rows - r0, cols - c0)][np.newaxis]
    coords = [(y - py0, x - px0) for y in ty for x in tx]
    out = predictor.blend_tiles(padded, coords, th, tw, window)
    oy, ox = y0 + margin - py0, x0 + margin - px0
    return out[:, oy : oy + y1 - y0, ox : ox + x1 - x0]
