"""Corrections of a prediction, turned into annotations.

A prediction ``p`` (0 = background) corresponds to annotation ``p + 1`` (1 = background,
0 = not annotated). What the user changed on the predictions layer since it was last
predicted is what they have checked: those pixels become annotations, erased objects
(set to 0) included, as background. Everything else the model predicted is only the
model's opinion and stays unannotated unless the user accepts it explicitly.
"""

from __future__ import annotations

import numpy as np


def edited_pixels(predicted: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Where the predictions layer ``current`` differs from the prediction as made."""
    if np.shape(predicted) != np.shape(current):
        raise ValueError(
            f"prediction of shape {np.shape(predicted)} and edit of shape {np.shape(current)}"
        )
    return np.asarray(predicted) != np.asarray(current)


def accept_edits(
    annotations: np.ndarray, predicted: np.ndarray, current: np.ndarray, *,
    whole: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which annotation pixels to write, and with what, to accept the user's corrections.

    ``annotations``: the annotation slice (0 = not annotated); ``predicted``: the
    prediction as it was made; ``current``: the predictions layer as the user left it.
    Returns ``(where, values, edited)``: a mask of the pixels to write, their annotation
    values (``current + 1``) and the mask of the pixels the user edited. Edited pixels are
    always written, they are the user's latest word; with ``whole`` the unedited
    prediction is accepted as well, but only where nothing is annotated yet. Pixels whose
    value would not fit the annotation type are left out.
    """
    annotations = np.asarray(annotations)
    current = np.asarray(current)
    edited = edited_pixels(predicted, current)
    where = edited | (annotations == 0) if whole else edited.copy()
    if np.issubdtype(annotations.dtype, np.integer):
        where &= current.astype(np.int64) + 1 <= np.iinfo(annotations.dtype).max
    values = (current[where].astype(np.int64) + 1).astype(annotations.dtype)
    return where, values, edited & where
