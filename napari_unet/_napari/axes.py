"""Axes of an image layer: its channel axis, its pixels' shape, its axis of slices.

Shared by the session (:mod:`.state`) and the channel choice (:mod:`.channel_choice`),
which both need them; this module imports neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from napari.layers import Image

#: Key of an image layer's metadata that names its channel axis (set in the Data panel).
CHANNEL_AXIS_KEY = "channel_axis"
#: Key of the metadata of a layer split from a multi-channel file: its channel there.
CHANNEL_KEY = "channel"


def channel_axis(layer: Image | None) -> int | None:
    """The layer's channel axis, when it has one (never Y, X or RGB samples)."""
    if layer is None or getattr(layer, "rgb", False):
        return None
    axis = layer.metadata.get(CHANNEL_AXIS_KEY)
    if isinstance(axis, int) and not isinstance(axis, bool) and 0 <= axis < layer.ndim - 2:
        return axis
    return None


def set_channel_axis(layer: Image, axis: int | None) -> None:
    if axis is None:
        layer.metadata.pop(CHANNEL_AXIS_KEY, None)
    else:
        layer.metadata[CHANNEL_AXIS_KEY] = int(axis)


def spatial_shape(layer: Image) -> tuple[int, ...]:
    """Shape of the layer's pixels: without RGB samples and without its channel axis."""
    shape = tuple(np.shape(layer.data))
    if getattr(layer, "rgb", False):
        return shape[:-1]
    axis = channel_axis(layer)
    return shape if axis is None else shape[:axis] + shape[axis + 1 :]


def z_axis(layer: Image) -> int | None:
    """The layer's axis of slices when its pixels are a Z stack, else ``None``."""
    if len(spatial_shape(layer)) != 3:
        return None
    axis = channel_axis(layer)
    return next(i for i in range(layer.ndim - 2) if i != axis)
