"""The voxel size of an image and its layers, and which volume mode runs (GUI thread).

The voxel size lives where napari keeps it, in each layer's ``scale`` (µm per pixel, Z, Y,
X): the reader sets it from the file, the Data panel lets the user type it, and it is
set on the image and on every layer that belongs to it at once (annotations, predictions,
probabilities, objects, the other channels), so that they stay aligned voxel for voxel.
"""

from __future__ import annotations

from collections.abc import Sequence

from napari.layers import Image, Labels

from napari_unet.core.io.volume import check_voxel_size, resolve_dims

from .axes import channel_axis, spatial_shape
from .state import Session


def voxel_size(layer: Image) -> tuple[float, ...]:
    """The layer's voxel size along its pixels' axes (Z, Y, X or Y, X)."""
    scale = [float(s) for s in layer.scale]
    if getattr(layer, "rgb", False):
        scale = scale[: layer.ndim]
    axis = channel_axis(layer)
    if axis is not None:
        scale.pop(axis)
    return tuple(scale[-len(spatial_shape(layer)):])


def has_voxel_size(layer: Image) -> bool:
    """Whether the layer's scale says something (the reader leaves 1.0 where the file
    gives no voxel size)."""
    return any(abs(v - 1.0) > 1e-9 for v in voxel_size(layer))


def related_layers(viewer, image: Image, session: Session | None = None) -> list:
    """The layers that belong to ``image`` and must share its voxel size: those named
    after it (annotations, predictions, probabilities, objects...) of its pixels' shape,
    and the other channels chosen with it."""
    shape = spatial_shape(image)
    prefix = f"{image.name} "
    out = []
    for layer in viewer.layers:
        if layer == image or not isinstance(layer, Image | Labels):
            continue
        named = layer.name.startswith(prefix)
        channel = session is not None and layer in session.channel_layers
        if (named or channel) and _pixels_shape(layer)[-len(shape):] == shape:
            out.append(layer)
    return out


def set_voxel_size(viewer, image: Image, values: Sequence[float],
                   session: Session | None = None) -> tuple[float, ...]:
    """Set the voxel size of ``image`` and of its :func:`related_layers`; return it.

    Raises :class:`~napari_unet.core.errors.InputError` for a size that is not a number
    above 0 (nothing is changed then).
    """
    size = check_voxel_size(values, len(spatial_shape(image)))
    for layer in [image, *related_layers(viewer, image, session)]:
        _set_spatial_scale(layer, size)
    return size


def dims_in_effect(session: Session, image: Image | None) -> tuple[str, str]:
    """``("3d", why)`` or ``("2d", why)``: what training and prediction do with ``image``
    for its chosen volume mode (auto: whether its neighbouring slices overlap)."""
    if image is None:
        return "2d", "no image"
    shape = spatial_shape(image)
    choice = session.dims_choice(image)
    size = voxel_size(image)
    if choice != "auto" or len(shape) != 3:
        return resolve_dims(choice, shape, size)
    cached = session.auto_dims.get(image.unique_id)
    if cached is not None and cached[0] == size:
        return cached[1], cached[2]
    data = image.data
    axis = channel_axis(image)
    if axis is not None:  # channels on an axis: decide on the first one
        data = data[(slice(None),) * axis + (0,)]
    dims, why = resolve_dims(choice, shape, size, data)
    session.auto_dims[image.unique_id] = (size, dims, why)
    return dims, why


def model_voxel_size(image: Image) -> tuple[float, float, float] | None:
    """The (z, y, x) voxel size a 3D model is given for ``image``: ``None`` for a 2D
    image or one whose file gives none (every axis 1)."""
    from napari_unet.core.voxels import voxel_size_of

    return voxel_size_of(voxel_size(image))


def training_dims(session: Session) -> tuple[int, tuple[float, float, float] | None]:
    """``(3, voxel size)`` when the session's image trains as a volume, else ``(2,
    None)``; an :class:`InputError` when the current model is of the other kind."""
    from napari_unet.core.errors import InputError

    image = session.image
    dims = 3 if dims_in_effect(session, image)[0] == "3d" else 2
    bundle = session.bundle
    if bundle is not None and image is not None and bundle.dims != dims:
        runs = "as a 3D volume" if dims == 3 else "as 2D slices"
        other = "3D volume" if bundle.dims == 3 else "2D slices"
        raise InputError(f"the current model is a {bundle.dims}D model but {image.name!r} "
                         f"runs {runs}: start a new model (New, Train step) or choose the "
                         f"volume mode {other} (Data step)")
    return dims, (model_voxel_size(image) if dims == 3 and image is not None else None)


def _pixels_shape(layer) -> tuple[int, ...]:
    return spatial_shape(layer) if isinstance(layer, Image) else tuple(layer.data.shape)


def _set_spatial_scale(layer, size: tuple[float, ...]) -> None:
    """Put ``size`` on the layer's last spatial axes, keeping its other axes' scale."""
    scale = [float(s) for s in layer.scale]
    n = len(size)
    if isinstance(layer, Image) and channel_axis(layer) is not None:
        axis = channel_axis(layer)
        axes = [i for i in range(layer.ndim) if i != axis][-n:]
    else:
        axes = list(range(layer.ndim))[-n:]
    for i, value in zip(axes, size):
        scale[i] = value
    layer.scale = scale
