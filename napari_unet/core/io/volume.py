"""Volume mode of an image (``auto``, ``2d``, ``3d``) and the voxel size as typed.

*Auto* follows the engine's rule (:func:`napari_unet.core.voxels.is_volume`, the
command line's ``--dims auto``): a z-stack is one volume when its neighbouring slices
overlap; a pile of unrelated images, as a Data Science Bowl stack, stays 2D. The voxel
size typed in the GUI is checked here for 2D images (Y, X) and by the engine's
:func:`~napari_unet.core.voxels.check_voxel_size` for stacks (Z, Y, X).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from napari_unet.core.config import VOLUME_MODEL
from napari_unet.core.errors import InputError
from napari_unet.core.voxels import check_voxel_size as check_zyx
from napari_unet.core.voxels import is_volume, voxel_size_of

Dims = Literal["auto", "2d", "3d"]
#: The choices of the volume mode, as the command line's ``--dims`` spells them.
DIMS_CHOICES: tuple[str, ...] = ("auto", "2d", "3d")
DEFAULT_DIMS: Dims = "auto"
#: Of an image read lazily, *auto* reads this many neighbouring slices (from the middle,
#: a centred window of at most :data:`LAZY_SIDE` pixels): its chunks are costly.
LAZY_SLICES = 16
LAZY_SIDE = 512


def resolve_dims(choice: str, shape: Sequence[int], scale: Sequence[float] | None,
                 sample=None) -> tuple[Literal["2d", "3d"], str]:
    """The dimensionality that runs for ``choice`` (auto, 2d, 3d) on an image of
    ``shape`` (Z, Y, X for a stack) at voxel size ``scale`` (1.0 where the file gives
    none), and why; *auto* looks at the pixels ``sample`` (numpy, dask or zarr)."""
    if choice not in DIMS_CHOICES:
        raise InputError(f"the volume mode must be one of {', '.join(DIMS_CHOICES)}, "
                         f"not {choice!r}")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        return "2d", "a 2D image"
    if choice != "auto":
        return choice, "chosen"  # type: ignore[return-value]
    if sample is None:
        return "2d", "its slices were not read"
    volume, why = is_volume(_readable(sample), voxel_size_of(scale))
    if volume and VOLUME_MODEL == "2d":
        return "2d", f"{why}; a volume gets a 2D model, its objects joined across z"
    return ("3d" if volume else "2d"), why


def _readable(data) -> np.ndarray:
    """The stack itself in memory; of a lazy one, :data:`LAZY_SLICES` neighbouring slices
    from the middle, a centred window of them."""
    if isinstance(data, np.ndarray):
        return data
    n, h, w = (int(s) for s in data.shape[-3:])
    z0 = max(0, n // 2 - LAZY_SLICES // 2)
    y0, x0 = max(0, h // 2 - LAZY_SIDE // 2), max(0, w // 2 - LAZY_SIDE // 2)
    return np.asarray(data[z0 : z0 + LAZY_SLICES, y0 : y0 + LAZY_SIDE, x0 : x0 + LAZY_SIDE])


def check_voxel_size(values: Sequence[float], ndim: int) -> tuple[float, ...]:
    """``values`` as the voxel size of an image of ``ndim`` dimensions (Z, Y, X or Y, X,
    µm per pixel), or an :class:`InputError` saying what is wrong: each must be a finite
    number above 0."""
    if ndim == 3:
        return check_zyx(values)
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"a pixel size is numbers (µm per pixel), not {values!r}") from None
    if len(out) != ndim:
        raise InputError(f"the pixel size must be {ndim} numbers Y,X, not {len(out)}")
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise InputError("the pixel size must be positive numbers Y,X, not "
                         + ",".join(f"{v:g}" for v in out))
    return out


def parse_voxel_size(text: str, ndim: int) -> tuple[float, ...]:
    """The voxel size typed as ``0.28, 0.13, 0.13`` (or ``0.28 x 0.13 x 0.13``; one number
    for all axes), checked by :func:`check_voxel_size`."""
    parts = text.replace("×", " ").replace("x", " ").replace(",", " ").split()
    if not parts:
        raise InputError("type the voxel size, e.g. 0.3, 0.13, 0.13 (Z, Y, X in µm)")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise InputError(f"a voxel size is numbers (µm per pixel), not {text.strip()!r}") from None
    if len(values) == 1:
        values *= ndim
    return check_voxel_size(values, ndim)


def format_voxel_size(values: Sequence[float]) -> str:
    """``0.284, 0.127, 0.127``: the numbers of a voxel size as typed back."""
    return ", ".join(f"{float(v):.4g}" for v in values)
