import numpy as np
import pytest

from napari_unet.core.errors import InputError
from napari_unet.core.metrics import (
    class_scores,
    evaluate,
    foreground_iou,
    instance_scores,
    pixel_error,
    rand_error,
)


def test_class_scores_by_hand():
    truth = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    s = class_scores(pred, truth)
    assert s["iou"] == [pytest.approx(1 / 2), pytest.approx(2 / 3)]
    assert s["dice"] == [pytest.approx(2 / 3), pytest.approx(4 / 5)]
    assert foreground_iou(pred, truth) == pytest.approx(2 / 3)
    assert pixel_error(pred, truth) == pytest.approx(1 / 4)
    with pytest.raises(InputError):
        class_scores(pred, truth[:, :2])


def test_instance_f1_and_ap():
    truth = np.zeros((20, 20), int)
    truth[1:5, 1:5] = 1
    truth[10:15, 10:15] = 2
    truth[1:4, 12:18] = 3
    pred = np.zeros_like(truth)
    pred[1:5, 1:5] = 7  # exact
    pred[10:13, 10:15] = 2  # IoU 0.6: match
    pred[16:19, 1:4] = 4  # false positive; object 3 missed
    s = instance_scores(pred, truth)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["f1"] == pytest.approx(4 / 6)
    assert s["ap"] == pytest.approx(2 / 4)
    assert instance_scores(truth, truth)["f1"] == 1.0


def test_rand_error_zero_for_identical_and_grows_with_merges():
    truth = np.zeros((1, 20, 20), np.uint8)
    truth[:, 10, :] = 1  # a membrane splitting two cells
    assert rand_error(truth, truth) == pytest.approx(0.0, abs=1e-9)
    merged = np.zeros_like(truth)  # membrane missed: the cells merge
    assert rand_error(merged, truth) > 0.2


def test_evaluate_kinds():
    truth = np.zeros((16, 16), int)
    truth[2:8, 2:8] = 1
    pred = (truth > 0).astype(np.uint8)
    out = evaluate(pred, truth, "instance", pred_instances=truth)
    assert out["foreground_iou"] == 1.0 and out["f1_50"] == 1.0
    assert set(evaluate(pred, truth, "semantic")) >= {"iou", "dice", "pixel_error", "rand_error"}


def test_3d_objects_are_matched_through_the_volume():
    from napari_unet.core.metrics import evaluate, instance_scores

    truth = np.zeros((4, 10, 10), np.int32)
    truth[:, 2:5, 2:5] = 1
    pred = truth.copy()
    pred[2:] = 0
    pred[2:, 2:5, 2:5] = 2  # one object split in two along z
    assert instance_scores(pred, truth)["f1"] == 1.0  # slice by slice: all match
    scores = instance_scores(pred, truth, volume=True)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (0, 2, 1)
    assert evaluate(pred > 0, truth, "instance", pred, volume=True)["f1_50"] == 0.0
