"""Splitting an object along a line and merging two, in 2D and 3D, and what each edit
teaches: the cut as background, the objects as foreground, nothing elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, ellipsoid, line

from napari_unet.core.errors import InputError
from napari_unet.core.split_merge import apply_edit, merge_objects, object_distance, split_object


def _pair() -> np.ndarray:
    """Two overlapping disks as one object (1), and a separate object (2)."""
    inst = np.zeros((48, 72), np.int32)
    inst[disk((24, 22), 10)] = 1
    inst[disk((24, 40), 10)] = 1
    inst[disk((24, 62), 6)] = 2
    return inst


def _line(shape, y0, x0, y1, x1) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[line(y0, x0, y1, x1)] = True
    return mask


def test_split_by_a_line_gives_two_ids_and_the_annotations():
    inst = _pair()
    cut = _line(inst.shape, 2, 31, 46, 31)
    edit = split_object(inst, cut)
    assert edit.ids == (1, 3)
    out = edit.instances
    assert set(np.unique(out)) == {0, 1, 2, 3}
    assert (out[inst == 2] == 2).all()  # the other object is untouched
    on_object = cut & (inst == 1)
    assert (out[on_object] == 0).all()  # the line is background now
    left, right = out[:, :31], out[:, 32:]
    assert set(np.unique(left[left > 0])) != set(np.unique(right[right > 0]))
    assert ((out == 1) | (out == 3) | on_object)[inst == 1].all()  # nothing lost
    # The line is taught as background, the two parts as foreground, nothing else.
    assert (edit.annotation[on_object] == 1).all()
    assert (edit.annotation[(out == 1) | (out == 3)] == 2).all()
    assert not edit.where[(inst == 0) | (inst == 2)].any()
    # The cut lies between two touching objects: border weights, high.
    assert (edit.weights[on_object] > 5).all()
    assert (edit.weights[~edit.where] == 1).all()


def test_split_of_an_instance_model_teaches_interior_and_boundary():
    inst = _pair()
    edit = split_object(inst, _line(inst.shape, 2, 31, 46, 31), boundary=True)
    parts = np.isin(edit.instances, edit.ids)
    assert set(np.unique(edit.annotation[parts])) == {2, 3}
    next_to_cut = np.roll(edit.annotation == 1, 1, axis=1) & parts
    assert (edit.annotation[next_to_cut] == 3).all()  # the parts' edge along the cut


def test_split_refuses_a_line_that_does_not_cut_through():
    inst = _pair()
    with pytest.raises(InputError, match="does not cut object 1 in two"):
        split_object(inst, _line(inst.shape, 2, 31, 20, 31))
    with pytest.raises(InputError, match="crosses no object"):
        split_object(inst, _line(inst.shape, 45, 0, 45, 5))


def test_merge_gives_one_id_and_fills_the_gap():
    inst = np.zeros((40, 60), np.int32)
    inst[disk((20, 18), 9)] = 4
    inst[disk((20, 40), 9)] = 7
    inst[:, 28:30] = 0  # a gap of two pixels between them
    inst[disk((5, 55), 3)] = 9
    assert object_distance(inst, 4, 7) > 2
    edit = merge_objects(inst, 7, 4)
    assert edit.ids == (4,)
    out = edit.instances
    assert not (out == 7).any() and (out[(inst == 4) | (inst == 7)] == 4).all()
    gap = (inst == 0) & (out == 4)
    assert gap[:, 27:31].sum() >= 2 * 5  # the gap is bridged, across a band of rows
    assert not gap[:, :9].any() and not gap[:, 51:].any()  # and only between them
    from scipy import ndimage as ndi

    assert ndi.label(out == 4)[1] == 1
    assert (edit.annotation[out == 4] == 2).all()
    assert not edit.where[out != 4].any()  # object 9 and the background untouched
    assert (out[inst == 9] == 9).all()


def test_merge_refuses_far_or_missing_objects():
    inst = np.zeros((40, 100), np.int32)
    inst[disk((20, 10), 5)] = 1
    inst[disk((20, 80), 5)] = 2
    with pytest.raises(InputError, match="apart"):
        merge_objects(inst, 1, 2)
    with pytest.raises(InputError, match="no object 3"):
        merge_objects(inst, 1, 3)
    with pytest.raises(InputError, match="two different"):
        merge_objects(inst, 1, 1)


def test_annotations_elsewhere_are_untouched():
    inst = _pair()
    rng = np.random.default_rng(0)
    annotations = rng.integers(0, 3, inst.shape).astype(np.uint8)
    edit = split_object(inst, _line(inst.shape, 2, 31, 46, 31))
    out = apply_edit(annotations, edit)
    np.testing.assert_array_equal(out[~edit.where], annotations[~edit.where])
    np.testing.assert_array_equal(out[edit.where], edit.annotation[edit.where])
    assert annotations is not out


def test_split_and_merge_in_3d():
    ball = ellipsoid(6, 8, 8).astype(bool)  # (15, 19, 19)
    inst = np.zeros((17, 24, 44), np.int32)
    inst[1:16, 2:21, 2:21][ball] = 1
    inst[1:16, 2:21, 15:34][ball] = 1  # two overlapping balls, one object
    drawn = np.zeros(inst.shape, bool)
    drawn[8] = _line(inst.shape[1:], 0, 18, 23, 18)  # a line on the middle slice
    with pytest.raises(InputError, match="in two"):
        split_object(inst, drawn)  # a line alone does not cut a volume
    edit = split_object(inst, drawn, axis=0)  # extended through z: a plane
    assert edit.ids == (1, 2)
    from scipy import ndimage as ndi

    for i in edit.ids:
        obj = edit.instances == i
        assert ndi.label(obj)[1] == 1 and obj[:, :, :18].any() != obj[:, :, 19:].any()
    plane = (inst == 1) & (edit.instances == 0)
    assert plane.any() and (np.nonzero(plane)[2] == 18).all()
    assert (edit.annotation[plane] == 1).all()
    assert (edit.annotation[edit.instances > 0] == 2).all()
    assert (edit.weights[plane] > 1).all()
    # Merging the two halves back fills the plane between them.
    merged = merge_objects(edit.instances, 1, 2)
    assert merged.ids == (1,)
    assert (merged.instances[plane] == 1).mean() > 0.9
    assert ndi.label(merged.instances == 1)[1] == 1


def test_delete_removes_a_3d_object_through_all_its_slices_and_teaches_background():
    from napari_unet.core.split_merge import delete_object

    inst = np.zeros((9, 24, 24), np.int32)
    ball = ellipsoid(3, 5, 5)[1:-1, 1:-1, 1:-1]  # 7 x 11 x 11
    inst[1:8, 2:13, 2:13][ball] = 4
    inst[2:5, 16:22, 16:22] = 7
    annotations = np.zeros(inst.shape, np.uint8)
    annotations[0, 0, :5] = 2
    edit = delete_object(inst, 4)
    obj = inst == 4
    assert edit.ids == (4,) and obj.sum() > 100 and len(np.unique(np.nonzero(obj)[0])) == 7
    assert not (edit.instances == 4).any()
    np.testing.assert_array_equal(edit.instances[~obj], inst[~obj])  # the other object stays
    np.testing.assert_array_equal(edit.where, obj)  # every slice of the object, nothing else
    assert (edit.annotation[obj] == 1).all()  # taught as background
    out = apply_edit(annotations, edit)
    assert (out[obj] == 1).all() and (out[0, 0, :5] == 2).all()
    with pytest.raises(InputError, match="no object 5"):
        delete_object(inst, 5)
    with pytest.raises(InputError, match="no object 0"):
        delete_object(inst, 0)
