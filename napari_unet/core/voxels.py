"""Voxel sizes and volumes: the checks, the rule that says whether a z-stack is one
volume, and the choices a 3D model makes from the voxel size (pooling per level, patch
shape). numpy only, no torch, so the GUI can use it on its own thread.

A voxel size is (z, y, x) in micrometres (any one unit, the same on every axis), as the
readers take it from ImageJ TIFF, OME-TIFF and OME-Zarr (napari's layer ``scale``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from napari_unet.core.errors import InputError

VoxelSize = tuple[float, float, float]

#: A level pools z only once z is no coarser than this many times the (pooled) xy step:
#: (1, 2, 2) while z is coarser, (2, 2, 2) after; z 2.2x coarser than xy gives one level
#: of (1, 2, 2), after which the voxels are near cubic (2.2 / 2 = 1.1).
ANISOTROPY_POOL = 1.5
#: A z-stack is one volume (``--dims auto``) when its neighbouring slices correlate at
#: least this much (median over the stack's neighbour pairs of the Pearson correlation):
#: slices of one volume overlap (0.78 and 0.95 on the z-stacks of shared/data/3d), unrelated
#: images of a pile do not (DSB stacks about 0, ISBI 2012 EM sections 50 nm apart 0.26).
OVERLAP_CORRELATION = 0.5
#: ... and it has at least this many slices (fewer is a pile of slices, or too thin for
#: a 3D model's smallest patch).
MIN_VOLUME_SLICES = 8


def check_voxel_size(value, what: str = "the voxel size") -> VoxelSize:
    """``value`` (three numbers, or text "Z,Y,X") as positive finite floats, or
    :class:`InputError` with one sentence."""
    if isinstance(value, str):
        parts = [p for p in value.replace("x", ",").replace(" ", ",").split(",") if p]
        try:
            value = [float(p) for p in parts]
        except ValueError:
            raise InputError(f"{what} must be three numbers Z,Y,X (e.g. 2,0.5,0.5), not "
                             f"{value!r}") from None
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        raise InputError(f"{what} must be three numbers Z,Y,X, not {value!r}") from None
    if len(numbers) != 3:
        raise InputError(f"{what} must be three numbers Z,Y,X, not {len(numbers)}")
    if not all(math.isfinite(v) and v > 0 for v in numbers):
        raise InputError(f"{what} must be three positive numbers Z,Y,X, not "
                         f"{','.join(f'{v:g}' for v in numbers)}")
    return (numbers[0], numbers[1], numbers[2])


def voxel_size_of(scale: Sequence[float] | None) -> VoxelSize | None:
    """The (z, y, x) voxel size of a ZYX layer or file scale; ``None`` when it says
    nothing (no scale, or every axis 1, the readers' value when a file has none)."""
    if scale is None or len(scale) < 3:
        return None
    zyx = tuple(float(s) for s in scale[-3:])
    if all(s == 1.0 for s in zyx) or not all(math.isfinite(s) and s > 0 for s in zyx):
        return None
    return zyx  # type: ignore[return-value]


def anisotropy(voxel_size: VoxelSize | None) -> float:
    """How many times coarser z is than xy (1 when unknown)."""
    if voxel_size is None:
        return 1.0
    z, y, x = voxel_size
    return z / math.sqrt(y * x)


def volume_pools(voxel_size: VoxelSize | None, depth: int) -> tuple[tuple[int, int, int], ...]:
    """Each level's pooling (z, y, x) for a 3D U-Net of ``depth`` levels: (1, 2, 2)
    while z is more than :data:`ANISOTROPY_POOL` times coarser than the pooled xy step,
    (2, 2, 2) after (and (2, 1, 1) while xy is as much coarser than z)."""
    ratio = anisotropy(voxel_size)
    pools = []
    for _ in range(depth):
        if ratio > ANISOTROPY_POOL:
            pools.append((1, 2, 2))
            ratio /= 2
        elif ratio < 1 / ANISOTROPY_POOL:
            pools.append((2, 1, 1))
            ratio *= 2
        else:
            pools.append((2, 2, 2))
    return tuple(pools)


def pools_multiple(pools: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    out = [1, 1, 1]
    for level in pools:
        out = [m * f for m, f in zip(out, level)]
    return (out[0], out[1], out[2])


def patch_shape(side: int, voxel_size: VoxelSize | None, pools: Sequence[Sequence[int]],
                max_depth: int | None = None) -> tuple[int, int, int]:
    """A 3D training patch (z, y, x) of ``side`` pixels in xy and as deep as it is wide in
    micrometres (at most ``max_depth`` slices, by default ``side // 2``), each side a
    multiple of the pools and at least two of them deep."""
    mz, my, mx = pools_multiple(pools)
    ratio = anisotropy(voxel_size)
    depth = side / ratio
    cap = side // 2 if max_depth is None else max_depth
    depth = min(depth, cap)
    z = max(2 * mz, int(round(depth / mz)) * mz)
    return (z, max(my, side // my * my), max(mx, side // mx * mx))


def neighbour_correlation(stack: np.ndarray, max_pixels: int = 262_144) -> float:
    """The median Pearson correlation of neighbouring slices of a (Z, Y, X) stack (from
    a centred window of at most ``max_pixels`` pixels per slice, in means of 2 x 2
    pixels so that pixel noise counts less); 0 for fewer than two slices."""
    stack = np.asarray(stack)
    if stack.ndim != 3 or stack.shape[0] < 2:
        return 0.0
    h, w = stack.shape[1:]
    side = int(math.sqrt(max_pixels))
    ys = slice(max(0, h // 2 - side // 2), max(0, h // 2 - side // 2) + side)
    xs = slice(max(0, w // 2 - side // 2), max(0, w // 2 - side // 2) + side)
    z_step = max(1, stack.shape[0] // 64)
    planes = np.asarray(stack[::z_step, ys, xs], np.float64)
    if planes.shape[1] >= 8 and planes.shape[2] >= 8:  # 2x2 means: less pixel noise
        n, h2, w2 = planes.shape[0], planes.shape[1] // 2, planes.shape[2] // 2
        planes = planes[:, : 2 * h2, : 2 * w2].reshape(n, h2, 2, w2, 2).mean(axis=(2, 4))
    flat = planes.reshape(planes.shape[0], -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1)
    a, b, na, nb = flat[:-1], flat[1:], norm[:-1], norm[1:]
    ok = (na > 0) & (nb > 0)
    if not ok.any():
        return 0.0
    corr = (a[ok] * b[ok]).sum(axis=1) / (na[ok] * nb[ok])
    return float(np.median(corr))


def is_volume(stack, voxel_size: VoxelSize | None) -> tuple[bool, str]:
    """Whether ``--dims auto`` treats the stack as one volume, and why, in words.

    A volume: a (Z, Y, X) stack of at least :data:`MIN_VOLUME_SLICES` slices whose
    neighbouring slices overlap (:func:`neighbour_correlation` at least
    :data:`OVERLAP_CORRELATION`); the voxel size, known or not, is then used. A stack
    whose slices do not overlap is a pile of 2D images even with a voxel size.
    """
    shape = tuple(np.shape(stack))
    if len(shape) != 3:
        return False, "2D image"
    if shape[0] < MIN_VOLUME_SLICES:
        return False, f"{shape[0]} slices (a volume has at least {MIN_VOLUME_SLICES})"
    corr = neighbour_correlation(np.asarray(stack))
    vs = "" if voxel_size is None else (
        f", voxel {voxel_size[0]:g} x {voxel_size[1]:g} x {voxel_size[2]:g}")
    if corr >= OVERLAP_CORRELATION:
        return True, f"{shape[0]} slices that overlap (neighbour correlation {corr:.2f}{vs})"
    return False, (f"{shape[0]} slices that do not overlap (neighbour correlation "
                   f"{corr:.2f} < {OVERLAP_CORRELATION:g}){vs}: a stack of 2D images")
