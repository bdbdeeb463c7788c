"""Where to annotate next: the windows with the most uncertain unannotated pixels.

A window (the model's patch, one slice of a stack or a box of a volume) scores the sum of
the uncertainty (:mod:`.uncertainty`) over its pixels that are not annotated; the best
windows are taken greedily, each time dropping the windows that overlap the one taken
(non-maximum suppression), so the regions never overlap. Windows that hold a pixel of
``exclude`` (what the user annotated or corrected since the model last trained) are
left out, as are windows without any unannotated uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: At most this many window positions along one axis are scored (the others are skipped
#: by a stride), so that ranking a large slice stays quick.
MAX_POSITIONS = 512


@dataclass(frozen=True)
class Region:
    """One window: ``start`` and ``stop`` per axis of the uncertainty (a stack's slice
    has ``stop[0] == start[0] + 1``), the summed uncertainty of its unannotated pixels
    and their number."""

    start: tuple[int, ...]
    stop: tuple[int, ...]
    score: float
    pixels: int

    @property
    def centre(self) -> tuple[float, ...]:
        return tuple((a + b - 1) / 2 for a, b in zip(self.start, self.stop))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))

    @property
    def mean(self) -> float:
        """The mean uncertainty of the unannotated pixels of the window."""
        return self.score / self.pixels if self.pixels else 0.0


def _box_sums(values: np.ndarray, window: tuple[int, ...]) -> np.ndarray:
    """Sum of ``values`` over every window position (one per start), by cumulative sums."""
    out = values.astype(np.float64)
    for axis, w in enumerate(window):
        c = np.cumsum(out, axis=axis)
        c = np.concatenate([np.zeros_like(np.take(c, [0], axis=axis)), c], axis=axis)
        n = out.shape[axis]
        out = np.take(c, np.arange(w, n + 1), axis=axis) - np.take(c, np.arange(0, n - w + 1),
                                                                    axis=axis)
    return out


def full_window(shape: tuple[int, ...], window: int | tuple[int, ...]) -> tuple[int, ...]:
    """``window`` for every axis of ``shape``: an int or a tuple names the last axes
    (the leading ones get 1, slices of a stack), each clipped to the axis's length."""
    w = (int(window),) * min(2, len(shape)) if np.isscalar(window) else tuple(
        int(v) for v in window)
    if len(w) > len(shape) or any(v < 1 for v in w):
        raise ValueError(f"a window of {w} does not fit an array of shape {shape}")
    w = (1,) * (len(shape) - len(w)) + w
    return tuple(min(v, n) for v, n in zip(w, shape))


def next_regions(uncertainty: np.ndarray, annotations: np.ndarray | None,
                 window: int | tuple[int, ...], n: int = 10,
                 exclude: np.ndarray | None = None) -> list[Region]:
    """The ``n`` best non-overlapping windows, most uncertain unannotated pixels first.

    ``uncertainty``: (Y, X), a stack (Z, Y, X) or a volume, in [0, 1]. ``annotations``:
    the same shape, 0 = not annotated (or ``None``: nothing annotated). ``window``: the
    side of the model's patch (a 2D window on each slice), or one side per axis (e.g.
    ``(16, 64, 64)`` for a volume). ``exclude``: pixels whose windows drop out (annotated
    or corrected since the last training). Fewer than ``n`` regions come back when no
    other window has unannotated uncertainty left.
    """
    u = np.asarray(uncertainty, np.float32)
    if annotations is not None and np.shape(annotations) != u.shape:
        raise ValueError(f"annotations of shape {np.shape(annotations)} for an uncertainty "
                         f"of shape {u.shape}")
    if exclude is not None and np.shape(exclude) != u.shape:
        raise ValueError(f"an exclusion of shape {np.shape(exclude)} for an uncertainty "
                         f"of shape {u.shape}")
    w = full_window(u.shape, window)
    free = np.ones(u.shape, bool) if annotations is None else np.asarray(annotations) == 0
    values = np.where(free & np.isfinite(u), np.clip(u, 0, 1), 0).astype(np.float32)
    candidates: list[Region] = []
    # A window of one slice is ranked slice by slice (memory: one slice of sums at a time).
    planes = range(u.shape[0]) if u.ndim >= 3 and w[0] == 1 else [None]
    for z in planes:
        index = (Ellipsis,) if z is None else (z,)
        ww = w if z is None else w[1:]
        candidates += _plane_regions(values[index], free[index],
                                     None if exclude is None else np.asarray(exclude)[index],
                                     ww, n, z)
    candidates.sort(key=lambda r: -r.score)
    return candidates[:n]


def _plane_regions(values, free, exclude, window, n, z) -> list[Region]:
    """The ``n`` best non-overlapping windows of one slice (or of a whole array)."""
    scores = _box_sums(values, window)
    pixels = _box_sums(free, window)
    strides = tuple(max(1, -(-s // MAX_POSITIONS)) for s in scores.shape)
    grid = tuple(slice(None, None, s) for s in strides)
    scores, pixels = scores[grid], pixels[grid]
    if exclude is not None:
        scores = np.where(_box_sums(exclude, window)[grid] > 0, -np.inf, scores)
    scores = np.where(scores > 1e-9, scores, -np.inf)
    out: list[Region] = []
    while len(out) < n:
        k = int(np.argmax(scores))
        best = float(scores.flat[k])
        if not np.isfinite(best):
            break
        pos = np.unravel_index(k, scores.shape)
        start = tuple(int(p) * s for p, s in zip(pos, strides))
        stop = tuple(a + v for a, v in zip(start, window))
        # Every window overlapping this one drops out.
        near = tuple(slice(max(0, -(-(a - v + 1) // s)), (a + v - 1) // s + 1)
                     for a, v, s in zip(start, window, strides))
        count = int(round(float(pixels[pos])))
        scores[near] = -np.inf
        if z is not None:
            start, stop = (z, *start), (z + 1, *stop)
        out.append(Region(start, stop, best, count))
    return out


def changed_since(before: np.ndarray | None, now: np.ndarray) -> np.ndarray:
    """The pixels of ``now`` that differ from ``before`` (all of them annotated ones when
    there was no ``before``): what the user painted or erased since."""
    now = np.asarray(now)
    if before is None or np.shape(before) != now.shape:
        return now != 0
    return np.asarray(before) != now
