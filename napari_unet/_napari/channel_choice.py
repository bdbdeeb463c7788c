"""Which channels of the chosen image the model reads (GUI thread only).

A multi-channel image is in napari either one layer per channel (the plugin's reader
and napari's ``channel_axis`` split a file so) or one layer with a channel axis. The
session holds the choice (:class:`~.state.Session`: ``channel_layers`` or the image's
channel axis and ``channel_indices``); this module turns it into the arrays that
training and prediction take, through the same core functions as the command line
(:func:`napari_unet.core.io.channels.pick_channels`, :func:`~napari_unet.core.io.channels.stack_channels`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .axes import CHANNEL_KEY, channel_axis, z_axis

if TYPE_CHECKING:
    from napari.layers import Image

    from napari_unet.core.models.checkpoint import ModelBundle

    from .state import Session

def channel_layers(session: Session) -> list[Image]:
    """The layers that are the channels: those chosen, else the image alone."""
    image = session.image
    layers = [layer for layer in session.channel_layers if layer in session.viewer.layers]
    if channel_axis(image) is not None or not layers:
        return [] if image is None else [image]
    return layers


def _plane(layer: Image, z: int | None):
    """The layer's data, or slice ``z`` of it; a lazy layer's stay lazy (nothing read)."""
    from napari_unet.core.io.lazy import is_lazy

    data = layer.data
    axis = z_axis(layer)
    if z is not None and axis is not None:
        index = [slice(None)] * layer.ndim
        index[axis] = z
        data = data[tuple(index)]
    return data if is_lazy(data) else np.asarray(data)


def is_lazy_input(session: Session) -> bool:
    """Whether the chosen image (or one of its channel layers) is opened lazily."""
    from napari_unet.core.io.lazy import is_lazy

    return any(is_lazy(layer.data) for layer in channel_layers(session))


def image_input(session: Session, z: int | None = None):
    """A copy of the chosen channels of the image (slice ``z`` of a stack, or all of it)
    in the core's form: 2D or (Z, Y, X) for one channel, (Z, C, Y, X) for several (a
    2D image or one slice as (1, C, Y, X)). For an image opened lazily the chosen
    channel stays a lazy (dask) array, read later slice by slice; several channels of
    such an image are refused. Raises the core's :class:`InputError`."""
    from napari_unet.core.io.channels import pick_channels, stack_channels
    from napari_unet.core.io.lazy import is_lazy

    image = session.image
    axis = channel_axis(image)
    if axis is not None:
        data = _plane(image, z)
        if z is not None and z_axis(image) is not None and z_axis(image) < axis:
            axis -= 1
        picked = pick_channels(data, axis, session.channel_indices, repr(image.name))
    else:
        picked = stack_channels([_plane(layer, z) for layer in channel_layers(session)])
    return picked if is_lazy(picked) else np.array(picked)


def chosen_count(session: Session) -> int:
    """How many channels are chosen."""
    image = session.image
    axis = channel_axis(image)
    if axis is not None:
        indices = session.channel_indices
        return image.data.shape[axis] if indices is None else len(indices)
    return len(channel_layers(session))


def recorded_channels(session: Session) -> tuple[int, ...] | None:
    """The channels the model records: the chosen indices of the image's channel axis,
    or the channels in their file of the chosen layers (the plugin's reader notes
    them), else their positions; ``None`` for the image alone, as before channels."""
    image = session.image
    axis = channel_axis(image)
    if axis is not None:
        indices = session.channel_indices
        return tuple(range(image.data.shape[axis])) if indices is None else tuple(indices)
    layers = channel_layers(session)
    noted = [layer.metadata.get(CHANNEL_KEY) for layer in layers]
    if all(isinstance(c, int) for c in noted) and len(set(noted)) == len(noted):
        return tuple(noted)
    if len(layers) == 1:
        return None
    return tuple(range(len(layers)))


def mismatch(session: Session, bundle: ModelBundle | None) -> str | None:
    """Why the chosen channels do not fit ``bundle``, and what to do; ``None`` if they do."""
    if bundle is None or session.image is None:
        return None
    n, k = chosen_count(session), bundle.in_channels
    if n == k:
        return None
    which = "" if bundle.channels is None or k == 1 else (
        f" (channels {','.join(str(c) for c in bundle.channels)} of its training images)")
    return (f"the model reads {k} channel{'s' if k > 1 else ''}{which} but {n} "
            f"{'is' if n == 1 else 'are'} chosen: choose {k} in the Data step's Channels")
