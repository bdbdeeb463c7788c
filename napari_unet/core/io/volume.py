"""Is a z-stack one volume or a pile of unrelated 2D images? And its voxel size.

The rule of *Volume mode: Auto* (the GUI) and ``--dims auto``: a stack is a volume when
its file gives a z step (a voxel size along z), or when its slices overlap from one to
the next (neighbouring slices look alike); a pile of unrelated images, as a Data Science
Bowl stack, stays 2D. The threshold lies between what the shared data give: a median
correlation of neighbouring slices of 0.49 and 0.79 on the two real z-stacks of
``shared/data/3d``, -0.03 to 0.05 on the DSB piles and the shipped nuclei sample, and
0.20 on the ISBI EM sections (which stay 2D, as that challenge treats them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from napari_unet.core.errors import InputError

Dims = Literal["auto", "2d", "3d"]
#: The choices of the volume mode, as the command line's ``--dims`` spells them.
DIMS_CHOICES: tuple[str, ...] = ("auto", "2d", "3d")
DEFAULT_DIMS: Dims = "auto"
#: Neighbouring slices at least this correlated (median over a few pairs): one volume.
OVERLAP_CORRELATION = 0.3
#: Pairs of neighbouring slices read to decide (spread through the stack).
SAMPLED_PAIRS = 8
#: The slices are read at most this many pixels wide (a stride), to decide fast.
SAMPLED_SIDE = 256


@dataclass(frozen=True)
class VolumeGuess:
    """What *auto* decides for one image, and why (a phrase for the user)."""

    volume: bool
    reason: str


def guess_volume(shape: Sequence[int], scale: Sequence[float] | None,
                 sample=None) -> VolumeGuess:
    """Decide whether an image of ``shape`` (Z, Y, X for a stack) is one volume.

    ``scale`` is its voxel size per axis (1.0 where the file gives none); ``sample`` the
    pixels (numpy, dask or zarr: only a few slices are read).
    """
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3:
        return VolumeGuess(False, "a 2D image" if len(shape) == 2 else
                           f"{len(shape)} dimensions")
    if shape[0] < 2:
        return VolumeGuess(False, "a single slice")
    if scale is not None and len(scale) >= 3 and _given(float(scale[-3])):
        return VolumeGuess(True, f"the file gives a z step of {float(scale[-3]):g} µm")
    if sample is None:
        return VolumeGuess(False, "no z step in the file")
    r = slice_overlap(sample)
    if r >= OVERLAP_CORRELATION:
        return VolumeGuess(True, f"neighbouring slices overlap (r = {r:.2f})")
    return VolumeGuess(False, f"unrelated slices (r = {r:.2f}), no z step in the file")


def looks_like_volume(shape: Sequence[int], scale: Sequence[float] | None,
                      sample=None) -> bool:
    """Whether *auto* treats the image as one volume (see :func:`guess_volume`)."""
    return guess_volume(shape, scale, sample).volume


def slice_overlap(data) -> float:
    """Median correlation of neighbouring slices, over up to :data:`SAMPLED_PAIRS` pairs
    spread through the stack (two for an array read lazily; each slice read with a
    stride, at most :data:`SAMPLED_SIDE` pixels wide)."""
    n = int(data.shape[0])
    if n < 2:
        return 0.0
    step = max(1, math.ceil(max(int(data.shape[1]), int(data.shape[2])) / SAMPLED_SIDE))
    # An image read lazily (from a file larger than memory): two pairs, chunks are costly.
    pairs = SAMPLED_PAIRS if isinstance(data, np.ndarray) else 2
    starts = np.unique(np.linspace(0, n - 2, min(pairs, n - 1)).round().astype(int))
    values = []
    for z in starts:
        pair = np.asarray(data[int(z): int(z) + 2, ::step, ::step], dtype=np.float64)
        a, b = (p.ravel() - p.mean() for p in pair)
        norm = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
        values.append(float((a * b).sum()) / norm if norm > 0 else 1.0)
    return float(np.median(values))


def resolve_dims(choice: str, shape: Sequence[int], scale: Sequence[float] | None,
                 sample=None) -> tuple[Literal["2d", "3d"], str]:
    """The dimensionality that runs for ``choice`` (auto, 2d, 3d) and why."""
    if choice not in DIMS_CHOICES:
        raise InputError(f"the volume mode must be one of {', '.join(DIMS_CHOICES)}, "
                         f"not {choice!r}")
    if len(tuple(shape)) != 3:
        return "2d", "a 2D image"
    if choice == "2d":
        return "2d", "chosen"
    if choice == "3d":
        return "3d", "chosen"
    guess = guess_volume(shape, scale, sample)
    return ("3d" if guess.volume else "2d"), guess.reason


def _given(value: float) -> bool:
    """Whether a spacing read from a file was given there (readers put 1.0 otherwise)."""
    return math.isfinite(value) and value > 0 and not math.isclose(value, 1.0)


def check_voxel_size(values: Sequence[float], ndim: int | None = None) -> tuple[float, ...]:
    """``values`` as a voxel size (µm per pixel, one per axis), or an :class:`InputError`
    saying what is wrong: each must be a finite number above 0."""
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise InputError(f"a voxel size is numbers (µm per pixel), not {values!r}") from None
    if ndim is not None and len(out) != ndim:
        names = "z, y, x" if ndim == 3 else "y, x"
        raise InputError(f"give {ndim} voxel sizes ({names} in µm), not {len(out)}")
    for v in out:
        if not math.isfinite(v) or v <= 0:
            raise InputError(f"a voxel size must be a number above 0 µm, not {v:g}")
    return out


def parse_voxel_size(text: str, ndim: int) -> tuple[float, ...]:
    """The voxel size typed as ``0.28, 0.13, 0.13`` (or ``0.28 x 0.13 x 0.13``; one number
    for all axes), checked by :func:`check_voxel_size`."""
    parts = [p for p in text.replace("×", " ").replace("x", " ").replace(",", " ").split() if p]
    if not parts:
        raise InputError("type the voxel size, e.g. 0.3, 0.13, 0.13 (z, y, x in µm)")
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
