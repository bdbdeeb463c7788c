"""The uncertainty of a prediction: class entropy, disagreement and their ROC AUC."""

import numpy as np
import pytest

from napari_unet.core.predict.uncertainty import (
    class_entropy,
    disagreement,
    roc_auc,
    uncertainty,
)


def test_entropy_is_zero_when_sure_and_one_when_every_class_is_as_likely():
    sure = np.zeros((3, 4, 5), np.float32)
    sure[1] = 1
    even = np.full((3, 4, 5), 1 / 3, np.float32)
    assert np.allclose(class_entropy(sure), 0, atol=1e-5)
    assert np.allclose(class_entropy(even), 1, atol=1e-5)
    out = uncertainty(even)
    assert out.dtype == np.float32 and out.shape == (4, 5)


def test_entropy_rises_as_two_classes_approach_each_other():
    p = np.linspace(0.0, 0.5, 11, dtype=np.float32)
    probs = np.stack([1 - p, p])[:, None, :]  # (C=2, 1, 11)
    u = uncertainty(probs)[0]
    assert u[0] == pytest.approx(0, abs=1e-5) and u[-1] == pytest.approx(1, abs=1e-5)
    assert np.all(np.diff(u) > 0)
    assert u.min() >= 0 and u.max() <= 1


def test_stack_axis_and_one_class():
    probs = np.random.default_rng(0).dirichlet([1, 1, 1], size=(2, 6, 7)).astype(np.float32)
    stack = np.moveaxis(probs, -1, 1)  # (Z, C, Y, X)
    u = uncertainty(stack, axis=1)
    assert u.shape == (2, 6, 7)
    assert np.allclose(u[1], uncertainty(stack[1]))
    assert np.all(uncertainty(np.ones((1, 3, 3), np.float32)) == 0)


def test_disagreement_of_samples():
    a = np.zeros((2, 4), np.float32)
    a[0] = 1
    b = a[::-1].copy()
    assert np.allclose(disagreement(np.stack([a, a, a])), 0)
    assert np.allclose(disagreement(np.stack([a, b])), 1)
    with pytest.raises(ValueError):
        disagreement(a[None])


def test_roc_auc():
    positive = np.array([0, 0, 1, 1, 0, 1], bool)
    assert roc_auc(positive.astype(float), positive) == pytest.approx(1.0)
    assert roc_auc(1 - positive.astype(float), positive) == pytest.approx(0.0)
    assert roc_auc(np.ones(6), positive) == pytest.approx(0.5)  # ties count half
    assert roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == \
        pytest.approx(0.75)
    assert np.isnan(roc_auc(np.ones(3), np.zeros(3, bool)))
