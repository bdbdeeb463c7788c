"""How a volume is cut into 3D tiles: as few voxels predicted as a memory budget per
tile allows, neighbours sharing a fixed margin, and the weight that blends them.

The cost of tiling is the voxels predicted twice. A share of each side (a quarter, as
2D tiles overlap) costs about 1.5^3 = 3.4x one pass in 3D; a margin fixed in voxels,
none along an axis that fits in one tile, and tiles as large as the budget allows cost
a few per cent on a volume a few tiles large (``benchmarks/quality/volumes.py``'s speed
rows). Only numpy here: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_unet.core.predict.layout import tile_starts

Shape3 = tuple[int, int, int]


def default_margin(multiple: Shape3) -> Shape3:
    """The voxels that neighbouring tiles share along (z, y, x): two pooling cells of
    the model's full pooling grid (16 pixels in xy, 8 slices in z at a (4, 8, 8) grid).
    Each voxel of a shared margin is taken mostly from the tile in which it lies at
    least half the margin from the face, where the zero padding at the face no longer
    shows (see :func:`blend_window_3d`)."""
    return tuple(2 * int(m) for m in multiple)  # type: ignore[return-value]


def blend_window_3d(shape: Shape3, ramps: Shape3) -> np.ndarray:
    """(Z, Y, X) weights: 1 inside, a sin^2 ramp of ``ramps`` voxels at each face."""
    axes = []
    for n, ramp in zip(shape, ramps):
        v = np.ones(n, np.float32)
        ramp = min(ramp, n // 2)
        if ramp > 0:
            r = np.arange(ramp, dtype=np.float32)
            edge = np.sin(0.5 * np.pi * (r + 0.5) / ramp) ** 2
            v[:ramp] = edge
            v[n - ramp:] = edge[::-1]
        axes.append(np.maximum(v, 1e-4))
    return axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]


@dataclass(frozen=True)
class VolumeLayout:
    """Equal tiles of ``shape`` at ``starts`` per axis, neighbours sharing ``margin``."""

    shape: Shape3
    starts: tuple[list[int], list[int], list[int]]
    margin: Shape3

    @property
    def corners(self) -> list[Shape3]:
        zs, ys, xs = self.starts
        return [(z, y, x) for z in zs for y in ys for x in xs]

    def predicted(self, sizes: Shape3) -> int:
        """Voxels predicted (a tile past the volume's end counts as cut there)."""
        return int(np.prod([len(s) * min(t, n) for s, t, n in
                            zip(self.starts, self.shape, sizes)]))

    def window(self) -> np.ndarray:
        return blend_window_3d(self.shape, tuple(m // 2 for m in self.margin))


def _axis_options(n: int, margin: int, multiple: int, largest: int | None):
    """Per tile length: (length, starts) of the distinct ways of covering ``n`` voxels
    with equal tiles sharing ``margin`` (one tile when it fits: no margin)."""
    options, seen = [], set()
    top = -(-n // multiple) * multiple
    if largest is not None:
        top = min(top, max(multiple, int(largest) // multiple * multiple))
    for t in range(top, multiple - 1, -multiple):
        if t < n and t < 2 * margin + multiple:
            break  # steps shorter than the margin: mostly voxels predicted twice
        length, starts = tile_starts(n, t, margin if t < n else 0, multiple)
        if (length, len(starts)) not in seen:
            seen.add((length, len(starts)))
            options.append((length, starts))
    if not options:  # the margin is wider than the volume allows: plain halves
        length, starts = tile_starts(n, top, min(margin, top // 2), multiple)
        options.append((length, starts))
    return options


def volume_layout(sizes: Shape3, multiple: Shape3, margin: Shape3, budget: int,
                  largest: Shape3 | None = None) -> VolumeLayout:
    """The tiles that predict a volume of ``sizes`` with the fewest voxels, each tile at
    most ``budget`` voxels (and ``largest`` along each axis when given), on the pooling
    grid ``multiple``, neighbours sharing ``margin`` voxels; of equal cost, the layout
    with fewer tiles. No margin along an axis that fits in one tile."""
    per_axis = [_axis_options(int(n), int(m), int(g), None if largest is None else largest[a])
                for a, (n, m, g) in enumerate(zip(sizes, margin, multiple))]
    lengths = [np.array([t for t, _ in o], np.float64) for o in per_axis]
    cost = [np.array([len(s) * min(t, n) for t, s in o], np.float64)
            for o, n in zip(per_axis, sizes)]
    counts = [np.array([len(s) for _, s in o], np.float64) for o in per_axis]
    grid = np.ix_(*[np.arange(len(o)) for o in per_axis])
    volume = lengths[0][grid[0]] * lengths[1][grid[1]] * lengths[2][grid[2]]
    total = cost[0][grid[0]] * cost[1][grid[1]] * cost[2][grid[2]]
    tiles = counts[0][grid[0]] * counts[1][grid[1]] * counts[2][grid[2]]
    fits = volume <= budget
    if not fits.any():  # the budget is below the smallest tiles: those
        fits = volume == volume.min()
    total = np.where(fits, total, np.inf)
    order = np.lexsort((tiles.ravel(), total.ravel()))
    pick = np.unravel_index(int(order[0]), total.shape)
    chosen = [per_axis[a][int(i)] for a, i in enumerate(pick)]
    shape = tuple(int(t) for t, _ in chosen)
    used = tuple(int(m) if len(s) > 1 else 0 for m, (_, s) in zip(margin, chosen))
    return VolumeLayout(shape, tuple(list(s) for _, s in chosen), used)  # type: ignore[arg-type]
