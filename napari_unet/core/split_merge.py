"""Split, merge and delete objects of an instance image, and what each edit teaches.

Instances are one id per object (0 = background), 2D or n-dimensional (a 3D volume is
edited as one array). Splitting cuts one object along a drawn line into its connected
parts, each with its own id; merging joins two objects into one id and fills the gap
between them; deleting removes a false object whole (in a volume: through all its
slices). Each :class:`Edit` also says which annotations it makes (the convention of
:mod:`.labels`: 0 = not annotated, 1 = background, 2.. foreground classes) and with what
loss weight: the cut as background between the parts, the parts as foreground; the
merged object, gap included, as foreground; a deleted object as background; the U-Net
paper's border weights (:func:`.labels.border_weights`) where objects touch. Annotations
away from the edited objects are never touched (:func:`apply_edit`). numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.labels import border_weights, instance_to_classes


@dataclass(frozen=True)
class Edit:
    """The instances after an edit, and the annotations it makes.

    ``annotation`` has the instances' shape: 0 where the edit teaches nothing, else the
    annotation value (1 = background, 2.. foreground). ``weights`` (float32, same shape)
    are the loss weights of those pixels (1 elsewhere). ``ids``: the objects the edit
    made (the parts of a split, the merged object).
    """

    instances: np.ndarray
    annotation: np.ndarray
    weights: np.ndarray
    ids: tuple[int, ...]

    @property
    def where(self) -> np.ndarray:
        """The pixels the edit annotates."""
        return self.annotation > 0


def _instances(instances: np.ndarray) -> np.ndarray:
    instances = np.asarray(instances)
    if not np.issubdtype(instances.dtype, np.integer):
        raise InputError(f"the instances have type {instances.dtype}; integer ids are needed")
    if instances.ndim < 2:
        raise InputError(f"the instances have {instances.ndim} dimension(s); 2 or more needed")
    return instances


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``pad`` pixels (within the array)."""
    index = np.nonzero(mask)
    return tuple(slice(max(int(i.min()) - pad, 0), min(int(i.max()) + pad + 1, n))
                 for i, n in zip(index, mask.shape))


def _teach(instances: np.ndarray, box: tuple[slice, ...], ids, background: np.ndarray,
           boundary: bool, foreground: int) -> tuple[np.ndarray, np.ndarray]:
    """Annotations and weights of the objects ``ids`` and the ``background`` pixels in
    ``box``: interior 2 / boundary 3 (``boundary``, as instance masks are taught) or the
    class ``foreground``; border weights (at least 1) where objects touch."""
    annotation = np.zeros(instances.shape, np.uint8)
    weights = np.ones(instances.shape, np.float32)
    crop = instances[box]
    objects = np.isin(crop, ids)
    if boundary:
        classes = instance_to_classes(crop)
        values = np.where(objects, classes, 0).astype(np.uint8)
    else:
        values = np.where(objects, foreground, 0).astype(np.uint8)
    values[background[box] & ~objects] = 1
    annotation[box] = values
    flat = crop.reshape(-1, *crop.shape[-2:]) if crop.ndim > 3 else crop
    w = border_weights(flat).reshape(crop.shape)
    weights[box] = np.where(values > 0, np.maximum(w, 1.0), 1.0)
    return annotation, weights


def split_object(instances: np.ndarray, line: np.ndarray, *, object_id: int | None = None,
                 axis: int | None = None, boundary: bool = False, foreground: int = 2,
                 min_part: int | None = None) -> Edit:
    """Cut one object of ``instances`` along ``line`` (a boolean mask of the drawn pixels,
    the instances' shape).

    ``object_id``: the object to cut (default: the one the line crosses most). ``axis``:
    extend the line along this axis through the whole array, so a line drawn on one slice
    of a volume cuts the object with the plane through it. The object less the line falls
    into parts (connected through faces); parts smaller than ``min_part`` pixels (default
    2 % of the object, at least 4) join the nearest larger part. The largest part keeps
    the id, the others take new ids; the line's pixels in the object become background.
    """
    instances = _instances(instances)
    line = np.asarray(line, bool)
    if line.shape != instances.shape:
        raise InputError(f"the line has shape {line.shape} but the instances {instances.shape}")
    if axis is not None:
        line = np.broadcast_to(line.any(axis=axis, keepdims=True), line.shape)
    if object_id is None:
        crossed = instances[line & (instances > 0)]
        if not crossed.size:
            raise InputError("the line crosses no object: draw it across the object to split")
        ids, counts = np.unique(crossed, return_counts=True)
        object_id = int(ids[np.argmax(counts)])
    obj = instances == object_id
    if not obj.any():
        raise InputError(f"there is no object {object_id} to split")
    from scipy import ndimage as ndi

    box = _box(obj, 2)
    inside, cut = obj[box], obj[box] & line[box]
    parts, n = ndi.label(inside & ~cut, structure=ndi.generate_binary_structure(inside.ndim, 1))
    sizes = np.bincount(parts.ravel())[1:]
    smallest = max(4, int(inside.sum()) // 50) if min_part is None else min_part
    big = [i + 1 for i in np.argsort(-sizes) if sizes[i] >= smallest]
    if len(big) < 2:
        raise InputError(f"the line does not cut object {object_id} in two: draw it across the "
                         "object, from one side to the other")
    keep = np.isin(parts, big)
    if not keep[inside & ~cut].all():  # small pieces join the nearest part
        _, nearest = ndi.distance_transform_edt(~keep, return_indices=True)
        small = (parts > 0) & ~keep
        parts[small] = parts[tuple(ix[small] for ix in nearest)]
    top = int(instances.max())
    new_ids = [object_id] + list(range(top + 1, top + len(big)))
    out_dtype = np.result_type(instances.dtype, np.min_scalar_type(top + len(big)))
    out = instances.astype(out_dtype, copy=True)
    crop = out[box]
    crop[cut] = 0
    for part, new in zip(big, new_ids):
        crop[parts == part] = new
    background = np.zeros(instances.shape, bool)
    background[box] = cut
    annotation, weights = _teach(out, box, new_ids, background, boundary, foreground)
    return Edit(out, annotation, weights, tuple(new_ids))


def object_distance(instances: np.ndarray, a: int, b: int) -> float:
    """The shortest distance (pixels) between objects ``a`` and ``b`` (1: they touch)."""
    from scipy import ndimage as ndi

    instances = _instances(instances)
    both = (instances == a) | (instances == b)
    box = _box(both, 1)
    crop = instances[box]
    return float(ndi.distance_transform_edt(crop != a)[crop == b].min())


def merge_objects(instances: np.ndarray, a: int, b: int, *, boundary: bool = False,
                  foreground: int = 2, max_gap: float | None = None) -> Edit:
    """Join objects ``a`` and ``b`` of ``instances`` into one (id ``min(a, b)``), the gap
    between them filled: the background pixels within half their distance (plus one
    pixel) of both, where they face each other, and a band a few pixels wide along the
    shortest way from one to the other.

    Objects further apart than ``max_gap`` pixels (default: the smaller one's equivalent
    diameter, at least 3) are refused: they are not one object cut in two.
    """
    from scipy import ndimage as ndi

    instances = _instances(instances)
    a, b = int(a), int(b)
    if a == b:
        raise InputError("pick two different objects to merge")
    masks = {k: instances == k for k in (a, b)}
    for k, mask in masks.items():
        if k == 0 or not mask.any():
            raise InputError(f"there is no object {k} to merge")
    gap = object_distance(instances, a, b)
    if max_gap is None:
        size = min(int(m.sum()) for m in masks.values())
        ndim = instances.ndim
        max_gap = max(3.0, 2 * (size / (np.pi if ndim == 2 else 4 / 3 * np.pi)) ** (1 / ndim))
    if gap > max_gap:
        raise InputError(f"objects {a} and {b} are {gap:.0f} pixels apart: merge neighbouring "
                         "objects only (one object the prediction cut in two)")
    reach = gap / 2 + 1
    box = _box(masks[a] | masks[b], int(np.ceil(reach)) + 2)
    crop = instances[box]
    to_a = ndi.distance_transform_edt(crop != a)
    to_b = ndi.distance_transform_edt(crop != b)
    # Where the two objects face each other (both within half their distance) and the
    # band along the shortest way from one to the other.
    fill = (((to_a <= reach) & (to_b <= reach)) | (to_a + to_b <= gap + 2)) & (crop == 0)
    keep = min(a, b)
    out = instances.copy()
    region = out[box]
    region[(crop == a) | (crop == b) | fill] = keep
    annotation, weights = _teach(out, box, [keep], np.zeros(out.shape, bool), boundary,
                                 foreground)
    return Edit(out, annotation, weights, (keep,))


def delete_object(instances: np.ndarray, object_id: int) -> Edit:
    """Remove object ``object_id`` of ``instances`` whole: its pixels become background
    and are taught as background (a false object, erased: it stays erased). In a volume
    that is every slice of the object, not only the one it was clicked on."""
    instances = _instances(instances)
    object_id = int(object_id)
    obj = instances == object_id
    if object_id == 0 or not obj.any():
        raise InputError(f"there is no object {object_id} to delete")
    out = instances.copy()
    out[obj] = 0
    return Edit(out, obj.astype(np.uint8), np.ones(instances.shape, np.float32),
                (object_id,))


def apply_edit(annotations: np.ndarray, edit: Edit) -> np.ndarray:
    """A copy of ``annotations`` with the edit's annotations written (only there)."""
    annotations = np.asarray(annotations)
    if annotations.shape != edit.annotation.shape:
        raise InputError(f"annotations of shape {annotations.shape} and an edit of shape "
                         f"{edit.annotation.shape}")
    out = annotations.copy()
    where = edit.where
    out[where] = edit.annotation[where].astype(annotations.dtype)
    return out
