"""Predicting a 2D image or a stack one slice at a time, lazy or not (TIFF outputs)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_unet.core.config import MIN_OBJECT_SIZE
from napari_unet.core.errors import InputError

if TYPE_CHECKING:
    from napari_unet.core.predict.tiles import Predictor


def predict_slices(
    predictor: Predictor,
    image: Any,
    write: Callable[[int, np.ndarray], None],
    *,
    instances: bool = False,
    min_size: int = MIN_OBJECT_SIZE,
    slices: list[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    resized: dict[int, float] | None = None,
) -> int:
    """Predict a 2D image or a (Z, Y, X) stack, lazy or not, one slice at a time.

    Each slice is read (only its chunks), predicted, and handed to ``write(z, labels)``
    (the labels of that slice, or its objects with ``instances``); nothing of the stack
    is held beyond one slice. ``progress(done, total)`` follows each slice,
    ``should_stop()`` is asked before each; ``resized``, when given, receives the factor
    of each slice that was resized (:mod:`~napari_unet.core.scale`, as ``Prediction.resized``). Returns how
    many slices were predicted.
    """
    ndim = len(image.shape)
    if ndim not in (2, 3):
        raise InputError(f"cannot predict an image of shape {tuple(image.shape)}: use a 2D "
                         "image or a stack of 2D slices with one channel")
    n = 1 if ndim == 2 else image.shape[0]
    todo = list(range(n)) if slices is None else [int(z) for z in slices]
    if any(z < 0 or z >= n for z in todo):
        raise InputError(f"slice index out of range for a stack of {n} slices")
    done = 0
    for z in todo:
        if should_stop is not None and should_stop():
            break
        plane = np.asarray(image if ndim == 2 else image[z])
        result = predictor.predict(plane, instances=instances, min_size=min_size)
        if resized is not None:
            for f in result.resized().values():  # one slice: one factor at most
                resized[z] = f
        write(z, result.instances if instances else result.labels)
        done += 1
        if progress is not None:
            progress(done, len(todo))
    return done
