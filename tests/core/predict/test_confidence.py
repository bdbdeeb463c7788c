"""Per-object confidence and the objects to review first."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk

from napari_unet.core.errors import InputError
from napari_unet.core.predict.confidence import (
    CONFIDENCE,
    object_confidence,
    objects_to_review,
    stack_to_review,
    volume_to_review,
)


def _scene():
    """Three objects: sure (1), faint (2), half sure (3); probabilities of 3 classes."""
    inst = np.zeros((64, 64), np.int32)
    inst[disk((16, 16), 8)] = 1
    inst[disk((16, 46), 8)] = 2
    inst[disk((46, 30), 8)] = 3
    fg = np.where(inst == 1, 0.99, np.where(inst == 2, 0.55, np.where(inst == 3, 0.8, 0.02)))
    interior = fg * np.where(inst == 3, 0.5, 0.95)
    probabilities = np.stack([1 - fg, interior, fg - interior]).astype(np.float32)
    return inst, probabilities


@pytest.mark.parametrize("how", CONFIDENCE)
def test_the_faint_object_is_least_sure(how):
    inst, probabilities = _scene()
    confidence = object_confidence(inst, probabilities, how=how)
    assert set(confidence) == {1, 2, 3}
    assert min(confidence, key=confidence.get) in (2, 3)
    assert max(confidence, key=confidence.get) == 1
    assert all(0 <= v <= 1 for v in confidence.values())


def test_margin_and_interior_differ_where_they_should():
    inst, probabilities = _scene()
    margin = object_confidence(inst, probabilities, how="margin")
    interior = object_confidence(inst, probabilities, how="interior")
    assert margin[2] < margin[3]  # faint: close to the threshold
    assert interior[3] < interior[2]  # half boundary inside: two nuclei, likely
    np.testing.assert_allclose(margin[2], (0.55 - 0.5) / 0.5, atol=1e-5)
    two_classes = np.stack([probabilities[0], 1 - probabilities[0]])
    assert object_confidence(inst, two_classes, how="interior") == pytest.approx(
        object_confidence(inst, two_classes, how="margin"))


def test_objects_to_review_are_least_sure_first_with_where_they_are():
    inst, probabilities = _scene()
    items = objects_to_review(inst, probabilities, count=2, how="margin")
    assert [o.id for o in items] == [2, 3]
    first = items[0]
    assert first.z is None and first.size == int((inst == 2).sum())
    np.testing.assert_allclose(first.centre, (16, 46), atol=0.5)
    ys, xs = np.nonzero(inst == 2)
    assert first.box == ((ys.min(), ys.max() + 1), (xs.min(), xs.max() + 1))


def test_a_stack_is_ranked_across_its_slices():
    inst, probabilities = _scene()
    stack = np.stack([inst, inst, np.zeros_like(inst)])
    probs = np.stack([probabilities, probabilities, probabilities])
    probs[1, 0][inst == 3] = 0.48  # slice 1: object 3 nearer the threshold than any
    probs[1, 1][inst == 3] = 0.47
    probs[1, 2][inst == 3] = 0.05
    items = stack_to_review(stack, probs, [0, 1, 2], count=3, how="margin")
    assert (items[0].z, items[0].id) == (1, 3)
    assert [o.confidence for o in items] == sorted(o.confidence for o in items)
    assert all(o.z in (0, 1) for o in items)


def test_bad_inputs_are_refused():
    inst, probabilities = _scene()
    with pytest.raises(InputError, match="do not fit"):
        object_confidence(inst, probabilities[:, :10])
    with pytest.raises(InputError, match="unknown confidence"):
        object_confidence(inst, probabilities, how="luck")
    assert object_confidence(np.zeros_like(inst), probabilities) == {}


@pytest.mark.parametrize("how", CONFIDENCE)
def test_a_volume_lists_each_3d_object_once_scored_over_all_its_slices(how):
    inst2d, probabilities = _scene()
    volume = np.stack([inst2d] * 6)  # three objects through 6 slices, one id each
    probs = {z: probabilities.copy() for z in range(6)}
    # Object 1 is sure on 5 of its slices and doubtful on one: overall the surest still.
    probs[2][0][inst2d == 1], probs[2][1][inst2d == 1], probs[2][2][inst2d == 1] = 0.45, 0.5, 0.05
    items = volume_to_review(volume, probs, range(6), count=10, how=how)
    assert sorted(o.id for o in items) == [1, 2, 3]  # once each, not once per slice
    if how != "weakest":  # its least sure tenth is that slice: rightly ranked lower
        assert items[-1].id == 1 and items[0].id in (2, 3)
    first = items[0]
    assert first.z is None and len(first.centre) == 3 and first.box[0] == (0, 6)
    assert first.size == int((volume == first.id).sum())
    # Only the slices predicted count: an object on none of them is not listed.
    volume[4:, inst2d == 2] = 0
    volume[4:, inst2d == 3] = 0
    volume[:4][np.broadcast_to(inst2d == 1, volume[:4].shape)] = 0
    assert [o.id for o in volume_to_review(volume, probs, [0, 1, 2, 3], how=how)] in (
        [2, 3], [3, 2])
    with pytest.raises(InputError, match="shape"):
        volume_to_review(volume, {0: probabilities[:, :10]}, [0], how=how)
    with pytest.raises(InputError, match="Z, Y, X"):
        volume_to_review(inst2d, probs, [0], how=how)
