"""How sure the model is of each predicted object, and which objects to review first.

An object's confidence is computed from the class probabilities (C, ...) over its
pixels (class 0 the background), in one of these ways (:data:`CONFIDENCE`):

* ``"foreground"``: the mean of the largest foreground-class probability;
* ``"margin"``: the mean distance of the foreground probability, 1 - p(background),
  from the foreground threshold (how far each pixel is from changing side);
* ``"interior"``: for a model of background / interior / boundary, the mean
  p(interior) (an object that is much boundary inside is likely two);
* ``"weakest"``: the 10th percentile of the margin (the object's least sure part);
* ``"shape"``: the margin times the object's solidity (its area over that of its convex
  hull): two nuclei merged into one are sure pixels in a shape no nucleus has.

Which ranks wrong objects (false, merged or cut ones) first was measured on held-out DSB
images (``benchmarks/quality/review_order.py``); :data:`DEFAULT_CONFIDENCE` is that one.
numpy and scipy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_unet.core.decision import FOREGROUND_THRESHOLD
from napari_unet.core.errors import InputError

CONFIDENCE = ("foreground", "margin", "interior", "weakest", "shape")
#: The measure that ranked wrong DSB objects first (benchmarks/quality/review_order.py).
DEFAULT_CONFIDENCE = "shape"


@dataclass(frozen=True)
class ObjectToReview:
    """One object: its slice (``None`` for a 2D image or a volume), id, confidence (0 to
    1, lower = less sure), size in pixels, centre and bounding box (in the pixels of its
    image or slice)."""

    z: int | None
    id: int
    confidence: float
    size: int
    centre: tuple[float, ...]
    box: tuple[tuple[int, int], ...]


def _pixel_scores(probabilities: np.ndarray, how: str, threshold: float) -> np.ndarray:
    p = np.asarray(probabilities, np.float32)
    if how == "foreground":
        return p[1:].max(axis=0)
    if how == "interior" and p.shape[0] == 3:
        return p[1]
    margin = np.abs((1.0 - p[0]) - threshold)
    return margin / max(threshold, 1 - threshold)  # 0..1


def solidity(instances: np.ndarray, ids) -> np.ndarray:
    """Each object's area over the area of its convex hull (1: convex)."""
    from skimage.measure import regionprops

    props = {p.label: p for p in regionprops(np.asarray(instances).astype(np.int64))}
    out = []
    for i in ids:
        try:
            out.append(float(props[int(i)].solidity))
        except (ValueError, IndexError, KeyError):  # too flat for a hull: a line of pixels
            out.append(1.0)
    return np.asarray(out)


def object_confidence(instances: np.ndarray, probabilities: np.ndarray, *,
                      how: str = DEFAULT_CONFIDENCE,
                      threshold: float = FOREGROUND_THRESHOLD) -> dict[int, float]:
    """{object id: confidence} of the objects of ``instances`` (0 = background) from the
    class ``probabilities`` (C, *instances.shape). ``"interior"`` on a model without an
    interior class falls back to ``"margin"``."""
    if how not in CONFIDENCE:
        raise InputError(f"unknown confidence {how!r}; use one of {', '.join(CONFIDENCE)}")
    instances = np.asarray(instances)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != instances.ndim + 1 or probabilities.shape[1:] != instances.shape:
        raise InputError(f"probabilities of shape {probabilities.shape} do not fit instances "
                         f"of shape {instances.shape}: (classes, *shape) is needed")
    if probabilities.shape[0] < 2:
        raise InputError("the probabilities need a background and a foreground class")
    ids = np.unique(instances[instances > 0])
    if not ids.size:
        return {}
    scores = _pixel_scores(probabilities, "margin" if how in ("weakest", "shape") else how,
                           threshold)
    return _object_values(scores, instances, ids, how)


def _object_values(scores: np.ndarray, instances: np.ndarray, ids: np.ndarray,
                   how: str) -> dict[int, float]:
    """Each object's confidence from its pixels' ``scores``."""
    from scipy import ndimage as ndi

    if how == "shape":
        values = ndi.mean(scores, instances, ids) * solidity(instances, ids)
    elif how == "weakest":
        values = ndi.labeled_comprehension(scores, instances, ids,
                                           lambda v: np.percentile(v, 10), np.float64, 0.0)
    else:
        values = ndi.mean(scores, instances, ids)
    return {int(i): float(v) for i, v in zip(ids, np.atleast_1d(values))}


def objects_to_review(instances: np.ndarray, probabilities: np.ndarray, *,
                      count: int = 10, z: int | None = None, how: str = DEFAULT_CONFIDENCE,
                      threshold: float = FOREGROUND_THRESHOLD) -> list[ObjectToReview]:
    """The ``count`` least certain objects of ``instances``, least certain first."""

    instances = np.asarray(instances)
    confidence = object_confidence(instances, probabilities, how=how, threshold=threshold)
    return _items(instances, confidence, count, z)


def _items(instances: np.ndarray, confidence: dict[int, float], count: int,
           z: int | None) -> list[ObjectToReview]:
    """The ``count`` objects of least ``confidence``, least certain first."""
    from scipy import ndimage as ndi

    worst = sorted(confidence, key=lambda i: (confidence[i], i))[:count]
    boxes = ndi.find_objects(instances, max_label=max(worst, default=0))
    out = []
    for i in worst:
        box = boxes[i - 1]
        mask = instances[box] == i
        centre = ndi.center_of_mass(mask)
        out.append(ObjectToReview(
            z=z, id=i, confidence=confidence[i], size=int(mask.sum()),
            centre=tuple(float(c + s.start) for c, s in zip(centre, box)),
            box=tuple((s.start, s.stop) for s in box)))
    return out


def stack_to_review(instances: np.ndarray, probabilities: np.ndarray, slices, *,
                    count: int = 10, how: str = DEFAULT_CONFIDENCE,
                    threshold: float = FOREGROUND_THRESHOLD) -> list[ObjectToReview]:
    """The ``count`` least certain objects of the listed ``slices`` of a stack of 2D
    slices (``instances`` (Z, Y, X), ids per slice; ``probabilities`` (Z, C, Y, X)),
    least certain first."""
    found: list[ObjectToReview] = []
    for z in slices:
        found += objects_to_review(instances[z], probabilities[z], count=count, z=int(z),
                                   how=how, threshold=threshold)
    return sorted(found, key=lambda o: (o.confidence, o.z, o.id))[:count]


def volume_to_review(instances: np.ndarray, probabilities, slices, *, count: int = 10,
                     how: str = DEFAULT_CONFIDENCE,
                     threshold: float = FOREGROUND_THRESHOLD) -> list[ObjectToReview]:
    """The ``count`` least certain 3D objects of a volume, least certain first:
    ``instances`` (Z, Y, X) with one id per object through all its slices, the class
    probabilities of the listed ``slices`` (``probabilities[z]``: (C, Y, X); a (Z, C, Y, X)
    array or a mapping of slices). Each object is scored over all its voxels on those
    slices (its solidity in 3D), so it is listed once, not once per slice; the items' ``z``
    is ``None``, their centre and box 3D."""
    instances = np.asarray(instances)
    slices = [int(z) for z in slices]
    if instances.ndim != 3:
        raise InputError(f"a volume's objects are (Z, Y, X); these have shape {instances.shape}")
    if how not in CONFIDENCE:
        raise InputError(f"unknown confidence {how!r}; use one of {', '.join(CONFIDENCE)}")
    listed = np.zeros(len(instances), bool)
    listed[slices] = True
    objects = np.where(listed[:, None, None], instances, 0)  # on the slices predicted
    scores = np.ones(instances.shape, np.float32)
    pixel = "margin" if how in ("weakest", "shape") else how
    for z in slices:
        p = np.asarray(probabilities[z])
        if p.ndim != 3 or p.shape[1:] != instances.shape[1:] or p.shape[0] < 2:
            raise InputError(f"the probabilities of slice {z} have shape {p.shape}; (classes, "
                             f"{', '.join(map(str, instances.shape[1:]))}) is needed")
        scores[z] = _pixel_scores(p, pixel, threshold)
    ids = np.unique(objects[objects > 0])
    if not ids.size:
        return []
    confidence = _object_values(scores, objects, ids, how)
    return _items(objects, confidence, count, None)
