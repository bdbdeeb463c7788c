"""How a slice is cut into tiles: equal overlapping tiles on the U-Net's pooling grid,
and the weight that blends their overlaps."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def tile_starts(size: int, tile: int, overlap: int, multiple: int) -> tuple[int, list[int]]:
    """Tile length and start positions covering ``size`` with at least ``overlap`` shared."""
    if size <= tile:
        t = -(-size // multiple) * multiple
        return t, [0]
    step = tile - overlap
    n = -(-(size - overlap) // step)
    t = -(-(size + (n - 1) * overlap) // n)  # shrink to cover evenly
    t = -(-t // multiple) * multiple
    if n == 1:
        return t, [0]
    last = size - t
    starts = [round(i * last / (n - 1) / multiple) * multiple for i in range(n)]
    starts[-1] = last
    if any(b - a > t for a, b in zip(starts, starts[1:])):
        # Rounding to the pooling grid opened a gap (little or no overlap): evenly spaced
        # starts always cover, as n tiles of t hold the size and the overlaps.
        starts = [round(i * last / (n - 1)) for i in range(n)]
    return t, starts


@lru_cache(maxsize=16)
def blend_window(h: int, w: int, ramp_y: int, ramp_x: int) -> np.ndarray:
    """The weight (h, w) of a tile's probabilities: 1 inside, falling smoothly (sin²)
    to almost 0 over ``ramp_y`` and ``ramp_x`` pixels at its edges."""
    def axis(n: int, ramp: int) -> np.ndarray:
        v = np.ones(n, np.float32)
        if ramp > 0:
            r = np.arange(ramp, dtype=np.float32)
            edge = np.sin(0.5 * np.pi * (r + 0.5) / ramp) ** 2
            v[:ramp] = edge
            v[n - ramp :] = edge[::-1]
        return np.maximum(v, 1e-4)

    return np.outer(axis(h, ramp_y), axis(w, ramp_x))
