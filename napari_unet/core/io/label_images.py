"""Whether an array is a label image, and labels in the smallest integer type that holds
them (the napari reader decides by these). Only numpy: no torch."""

from __future__ import annotations

import numpy as np


def looks_like_labels(data: np.ndarray, hint: bool | None = None) -> bool:
    """Whether an array is clearly a label image; when unsure, it is not.

    ``hint``, what the file's metadata say (:func:`labels_hint`), decides for integer,
    boolean or whole-number data. Otherwise the data decide: booleans; integers (or whole
    floats) from 0 with at most 64 distinct values (microscopy images are noisy); or integers from 0
    with more values that are piecewise constant, as many objects are (four in five
    neighbouring pixels equal where either is not 0). A file's name never decides.
    """
    if hint is not None:
        if not hint:
            return False
        if np.issubdtype(data.dtype, np.floating):  # labels saved as floats: 0.0, 1.0, ...
            return bool(np.all(np.isfinite(data)) and np.all(data == np.round(data)))
        return np.issubdtype(data.dtype, np.integer) or data.dtype == np.bool_
    if data.dtype == np.bool_:
        return True
    if data.ndim < 2 or not data.size:
        return False
    sample = data.ravel()[:: max(1, data.size // 1_000_000)]
    if np.issubdtype(data.dtype, np.floating):  # labels saved as floats: 0.0, 1.0, ... 63.0
        values = np.unique(sample)
        return bool(2 <= values.size <= 64 and np.all(np.isfinite(values)) and values[0] == 0
                    and np.all(values == np.round(values))
                    and np.all(data == np.round(data)))
    if not np.issubdtype(data.dtype, np.integer):
        return False
    values = np.unique(sample)
    if values[0] != 0:
        return False
    if values.size <= 64:
        return True
    if values.size > min(65536, data.size // 16):
        return False
    return _piecewise_constant(data) >= 0.8


def _piecewise_constant(data: np.ndarray) -> float:
    """The fraction of horizontally and vertically neighbouring pixel pairs, one of them not
    0, that are equal (up to about a million pairs of the first planes)."""
    planes = data.reshape(-1, *data.shape[-2:])
    planes = planes[: max(1, 1_000_000 // max(1, planes[0].size))]
    equal = total = 0
    for a, b in ((planes[..., 1:, :], planes[..., :-1, :]),
                 (planes[..., :, 1:], planes[..., :, :-1])):
        either = (a != 0) | (b != 0)
        equal += int(np.count_nonzero(either & (a == b)))
        total += int(np.count_nonzero(either))
    return equal / total if total else 1.0


def as_label_dtype(data: np.ndarray) -> np.ndarray:
    """Labels as the smallest integer type that holds them (bool and whole floats too)."""
    if data.dtype == np.bool_:
        return data.astype(np.uint8)
    if np.issubdtype(data.dtype, np.integer) or not data.size:
        return data
    lo, hi = float(np.min(data)), float(np.max(data))
    if lo >= 0 and hi < 2**16:
        return data.astype(np.uint8 if hi < 256 else np.uint16)
    return data.astype(np.int32 if lo >= -(2**31) and hi < 2**31 else np.int64)
