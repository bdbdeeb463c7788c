"""Writer: a Labels layer to a zlib-compressed ImageJ TIFF (opens in Fiji)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from napari_unet.core.io import write_tiff


def write_labels(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write labels atomically, keeping the layer's scale; return the path written."""
    target = Path(path)
    if not target.name.lower().endswith((".tif", ".tiff")):
        target = target.with_suffix(".tif")
    array = np.asarray(data)
    scale = meta.get("scale")
    axes = {2: "YX", 3: "ZYX"}.get(array.ndim)
    write_tiff(target, array, axes=axes,
               scale=tuple(float(s) for s in scale) if scale is not None and axes else None,
               labels=True)
    return [str(target)]
