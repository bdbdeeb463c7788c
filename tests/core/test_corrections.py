"""Accepting corrections: only what the user changed on a prediction becomes annotation."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet.core.corrections import accept_edits


def _case():
    made = np.zeros((8, 8), np.uint8)
    made[1:4, 1:4] = 1  # an object the user will erase
    made[5:7, 5:7] = 1  # an object the user leaves alone
    current = made.copy()
    current[1:4, 1:4] = 0  # erased
    current[0, 6:8] = 1  # a missed object painted
    annotations = np.zeros((8, 8), np.uint8)
    annotations[2, 2] = 2  # a stroke under the erased object
    annotations[7, 0] = 1  # a stroke elsewhere
    return annotations, made, current


def test_only_edited_pixels_are_written():
    annotations, made, current = _case()
    where, values, edited = accept_edits(annotations, made, current)
    assert where.sum() == 9 + 2 and (edited == where).all()
    out = annotations.copy()
    out[where] = values
    assert (out[1:4, 1:4] == 1).all()  # erased: background, over the old stroke too
    assert (out[0, 6:8] == 2).all()  # painted: the object class
    assert out[7, 0] == 1 and (out[5:7, 5:7] == 0).all()  # the rest untouched


def test_whole_slice_only_where_nothing_is_annotated():
    annotations, made, current = _case()
    annotations[5, 5] = 1  # the user said background here with a stroke
    where, values, edited = accept_edits(annotations, made, current, whole=True)
    out = annotations.copy()
    out[where] = values
    assert out[5, 5] == 1 and (out[5:7, 5:7].ravel()[1:] == 2).all()
    assert (out[1:4, 1:4] == 1).all() and out[7, 0] == 1
    assert (out > 0).all()
    assert edited.sum() == 11  # the weight of the corrections stays on the edits


def test_nothing_changed_nothing_written():
    annotations, made, _ = _case()
    where, values, edited = accept_edits(annotations, made, made.copy())
    assert not where.any() and values.size == 0 and not edited.any()


def test_shapes_must_match():
    with pytest.raises(ValueError, match="shape"):
        accept_edits(np.zeros((4, 4), np.uint8), np.zeros((4, 4)), np.zeros((4, 5)))
