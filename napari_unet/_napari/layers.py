"""Finding, creating and updating the plugin's layers (GUI thread only)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
from napari.layers import Image, Labels
from napari.utils.colormaps import DirectLabelColormap

from .axes import spatial_shape
from .state import ClassSpec

TRANSPARENT = (0.0, 0.0, 0.0, 0.0)
#: Predicted classes 1, 2, ... are drawn as outlines in these colours, a family apart from
#: the annotation classes' (blue background, orange, ...), so a stroke and a prediction
#: are never confused and the image stays visible inside every object.
PREDICTION_COLORS = ("#f032e6", "#ffe119", "#42d4f4", "#bfef45", "#fabed4", "#dcbeff",
                     "#ffffff", "#aaffc3")
PREDICTION_OPACITY = 0.9
PREDICTION_CONTOUR = 1  # outline width in pixels
#: Annotations are drawn see-through, the background class more than the others: an
#: accepted background region must not hide the image.
ANNOTATION_OPACITY = 0.7
BACKGROUND_ALPHA = 0.5


@contextmanager
def keep_selection(viewer) -> Iterator[None]:
    """Add layers without taking the selection (and its paint mode) away from the layer
    the user works on: napari selects every layer it adds."""
    selection = viewer.layers.selection
    before, active = set(selection), selection.active
    try:
        yield
    finally:
        if before and set(selection) != before:
            selection.clear()
            selection.update(layer for layer in before if layer in viewer.layers)
            if active is not None and active in viewer.layers:
                selection.active = active


def annotations_name(image: Image) -> str:
    return f"{image.name} annotations"


def predictions_name(image: Image) -> str:
    return f"{image.name} predictions"


def image_shape(image: Image) -> tuple[int, ...]:
    """Shape of the image's pixels (without RGB samples or its channel axis)."""
    return spatial_shape(image)


def is_lazy_layer(layer) -> bool:
    """Whether a layer's data are read on demand (an image opened lazily) or held
    chunk by chunk (zarr labels) rather than a numpy array."""
    from napari_unet.core.io.lazy import is_lazy

    return is_lazy(layer.data)


def empty_labels(image: Image, shape: tuple[int, ...], dtype=np.uint8):
    """Zeros for a labels layer over ``image``: a numpy array, or for an image opened
    lazily a zarr array in memory that stores only the chunks holding a label."""
    if is_lazy_layer(image):
        from napari_unet.core.io.sparse import sparse_labels

        return sparse_labels(shape, dtype)
    return np.zeros(shape, dtype)


def unusable_reason(image: Image) -> str | None:
    """Why napari-unet cannot segment ``image`` as it is, and what to do; ``None`` if it can."""
    shape = image_shape(image)
    if image.rgb:
        return (f"{image.name!r} is an RGB image; napari-unet works on one channel: "
                "right-click the layer > Split RGB, then choose one channel as the image")
    if len(shape) not in (2, 3):
        return (f"{image.name!r} has {len(shape)} dimensions {shape}; napari-unet works on a "
                "2D image or a Z stack (with channels): open one time point, or choose its "
                "channel axis in the Data step")
    return None


def annotation_colormap(classes: Sequence[ClassSpec]) -> DirectLabelColormap:
    """Annotation value v -> colour of class v (0 = not annotated, transparent); the
    background class (1) half transparent."""
    from napari.utils.colormaps.standardize_color import transform_color

    colors: dict[int | None, object] = {None: TRANSPARENT, 0: TRANSPARENT}
    for spec in classes:
        rgba = transform_color(spec.color)[0].copy()
        if spec.value == 1:
            rgba[3] = BACKGROUND_ALPHA
        colors[spec.value] = rgba
    return DirectLabelColormap(color_dict=colors)


def prediction_colormap(classes: Sequence[ClassSpec]) -> DirectLabelColormap:
    """Prediction p -> the p-th prediction colour; background (0) transparent."""
    colors: dict[int | None, object] = {None: TRANSPARENT, 0: TRANSPARENT}
    for spec in classes[1:]:
        p = spec.value - 1
        colors[p] = PREDICTION_COLORS[(p - 1) % len(PREDICTION_COLORS)]
    return DirectLabelColormap(color_dict=colors)


def find_labels(viewer, name: str, shape: tuple[int, ...]) -> Labels | None:
    """The Labels layer called ``name`` with the given shape, if there is one."""
    if name in viewer.layers:
        layer = viewer.layers[name]
        if isinstance(layer, Labels) and tuple(np.shape(layer.data)) == shape:
            return layer
    return None


def annotations_for(viewer, image: Image) -> Labels | None:
    """The annotations layer that belongs to ``image`` (named after it, same shape)."""
    return find_labels(viewer, annotations_name(image), image_shape(image))


def create_annotations(viewer, image: Image, classes: Sequence[ClassSpec]) -> Labels:
    """An empty annotations layer for ``image``, or the existing one."""
    layer = annotations_for(viewer, image)
    if layer is None:
        data = empty_labels(image, image_shape(image))
        layer = viewer.add_labels(
            data, name=annotations_name(image), scale=image.scale[-data.ndim:],
            translate=image.translate[-data.ndim:], opacity=ANNOTATION_OPACITY,
        )
    set_colormap(layer, annotation_colormap(classes))
    return layer


def write_predictions(
    viewer, image: Image, labels: np.ndarray, classes: Sequence[ClassSpec],
    z: int | None = None,
) -> Labels:
    """Write ``labels`` into the single predictions layer of ``image``.

    ``labels`` is the whole image, or with ``z`` the one slice ``z`` of a stack. The
    layer is created on first use and updated in place afterwards.
    """
    layer = predictions_layer(viewer, image, classes, labels.dtype)
    if np.iinfo(labels.dtype).max > np.iinfo(layer.data.dtype).max:
        if is_lazy_layer(layer):
            from napari_unet.core.io.sparse import to_sparse

            layer.data = to_sparse(layer.data, labels.dtype)
        else:
            layer.data = layer.data.astype(labels.dtype)
    if z is None:
        layer.data[...] = labels
    else:
        layer.data[z] = labels
    set_colormap(layer, prediction_colormap(classes))
    layer.refresh()
    return layer


def predictions_layer(viewer, image: Image, classes: Sequence[ClassSpec],
                      dtype=np.uint8) -> Labels:
    """The predictions layer of ``image``, created (empty) if there is none."""
    name = predictions_name(image)
    shape = image_shape(image)
    layer = find_labels(viewer, name, shape)
    if layer is None:
        if name in viewer.layers:  # a layer of that name but of another shape or type
            viewer.layers.remove(name)
        with keep_selection(viewer):
            layer = viewer.add_labels(
                empty_labels(image, shape, dtype), name=name, scale=image.scale[-len(shape):],
                translate=image.translate[-len(shape):],
                colormap=prediction_colormap(classes), opacity=PREDICTION_OPACITY,
            )
            layer.contour = PREDICTION_CONTOUR
    return layer


def set_colormap(layer: Labels, colormap: DirectLabelColormap) -> None:
    """Assign ``colormap`` unless the layer has these colours already (a new colormap
    rebuilds the layer's texture)."""
    current = layer.colormap
    if isinstance(current, DirectLabelColormap) and _same_colors(current, colormap):
        return
    layer.colormap = colormap


def _same_colors(a: DirectLabelColormap, b: DirectLabelColormap) -> bool:
    if set(a.color_dict) != set(b.color_dict):
        return False
    return all(np.allclose(a.color_dict[k], b.color_dict[k]) for k in b.color_dict)


def write_extra_layer(viewer, image: Image, suffix: str, data: np.ndarray, kind: str,
                      contour: int = 0, **kwargs) -> None:
    """Create or update the ``"<image> <suffix>"`` layer (probabilities, instances)."""
    name = f"{image.name} {suffix}"
    ndim = data.ndim
    layer_type = Labels if kind == "labels" else Image
    if name in viewer.layers and isinstance(viewer.layers[name], layer_type) and (
        np.shape(viewer.layers[name].data) == data.shape
    ):
        viewer.layers[name].data = data
        return
    add = viewer.add_labels if kind == "labels" else viewer.add_image
    with keep_selection(viewer):
        if name in viewer.layers:
            viewer.layers.remove(name)
        layer = add(data, name=name, scale=_pad_scale(image.scale, ndim),
                    translate=_pad_scale(image.translate, ndim, 0.0), **kwargs)
        if contour:
            layer.contour = contour


def _pad_scale(values, ndim: int, fill: float = 1.0) -> tuple[float, ...]:
    values = tuple(values)[-ndim:]
    return (fill,) * (ndim - len(values)) + values
