"""Writer: a Labels layer to a zlib-compressed TIFF (opens in Fiji), every id and axis
kept."""

from __future__ import annotations

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


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write labels atomically, keeping the layer's scale; return the path written."""
    target = Path(path)
    if not target.name.lower().endswith((".tif", ".tiff")):
        target = target.with_suffix(".tif")
    array = np.asarray(data)
    scale = meta.get("scale")
    axes = _axes(meta.get("axis_labels"), array.ndim)
    write_tiff(target, array, axes=axes,
               scale=tuple(float(s) for s in scale) if scale is not None and axes else None,
               labels=True)
    return [str(target)]
