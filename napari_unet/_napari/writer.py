"""Writer: a Labels layer to a zlib-compressed TIFF (opens in Fiji), every id and axis
kept."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.io.tiff import write_tiff


def _axes(labels: Any, ndim: int) -> str | None:
    """The layer's axis labels when they are TIFF axes (t, z, c, y, x), else the usual
    ones for its number of dimensions: YX, ZYX, TZYX, TZCYX."""
    if labels is not None and len(labels) == ndim:
        axes = "".join(str(a).upper() for a in labels)
        if len(axes) == ndim and set(axes) <= set("TZCYX") and len(set(axes)) == ndim:
            return axes
    return {2: "YX", 3: "ZYX", 4: "TZYX", 5: "TZCYX"}.get(ndim)


def _storable(value: Any) -> bool:
    """Whether a TIFF can store ``value`` as a pixel size (positive, finite, and its
    inverse too: TIFF stores pixels per unit)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v) and v > 0 and math.isfinite(1.0 / v)


def _scale(scale: Any, axes: str | None, name: str) -> tuple[float, ...] | None:
    """The layer's scale as a TIFF stores it; a value it cannot store (0, negative, not
    finite) becomes 1 on its axis, with a notification that says so."""
    if scale is None or not axes:
        return None
    values = list(scale)
    bad = [i for i, v in enumerate(values) if not _storable(v)]
    if bad:
        from napari.utils.notifications import show_warning

        which = ", ".join(f"{axes[i] if i < len(axes) else i}={values[i]}" for i in bad)
        show_warning(f"{name}: the layer's scale ({which}) cannot be stored in a TIFF (a "
                     "pixel size must be positive and finite): the labels were written with "
                     f"a pixel size of 1 on {'those axes' if len(bad) > 1 else 'that axis'}")
    return tuple(1.0 if i in bad else float(v) for i, v in enumerate(values))


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write labels atomically, keeping the layer's scale; return the path written."""
    target = Path(path)
    if not target.name.lower().endswith((".tif", ".tiff")):
        target = target.with_suffix(".tif")
    array = np.asarray(data)
    axes = _axes(meta.get("axis_labels"), array.ndim)
    write_tiff(target, array, axes=axes, scale=_scale(meta.get("scale"), axes, target.name),
               labels=True)
    return [str(target)]
