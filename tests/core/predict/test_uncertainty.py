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


def test_predictors_give_the_entropy_of_their_probabilities():
    """The 2D predictor (a stack, a 2D image) and the 3D one (a volume) give the
    uncertainty of the probabilities they predict, without any other change."""
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from napari_unet.core.predict.tiles import Predictor
    from napari_unet.core.predict.volume import VolumePredictor

    rng = np.random.default_rng(0)
    stack = rng.random((2, 40, 48)).astype(np.float32)
    two_d = Predictor(ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2),
                                      seed=1), device="cpu")
    both = two_d.predict(stack, probabilities=True, uncertainty=True)
    plain = two_d.predict(stack)
    np.testing.assert_array_equal(both.labels, plain.labels)
    assert plain.uncertainty is None
    assert both.uncertainty.shape == (2, 40, 48) and both.uncertainty.dtype == np.float32
    np.testing.assert_allclose(both.uncertainty, uncertainty(both.probabilities, axis=1),
                               atol=1e-6)
    assert two_d.predict(stack[0], uncertainty=True).uncertainty.shape == (40, 48)

    volume = rng.random((8, 32, 32)).astype(np.float32)
    three_d = VolumePredictor(ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=1,
                                                         dims=3), seed=2), device="cpu")
    out = three_d.predict(volume, probabilities=True, uncertainty=True)
    assert out.uncertainty.shape == volume.shape
    np.testing.assert_allclose(out.uncertainty, uncertainty(out.probabilities, axis=1),
                               atol=1e-6)
