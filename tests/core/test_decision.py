"""The foreground decision: 1 - p(background) >= t, then the most likely foreground class."""

import numpy as np
import pytest

from napari_unet.core.decision import FOREGROUND_THRESHOLD, decide, foreground
from napari_unet.core.errors import InputError
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig, Trainer
from tests.conftest import constant_bundle


def pixels(*columns) -> np.ndarray:
    """Probabilities (C, 1, N) from N columns of C class probabilities."""
    return np.array(columns, np.float32).T[:, None, :]


def test_background_below_half_is_foreground_with_three_classes():
    probs = pixels([0.4, 0.3, 0.3], [0.4, 0.35, 0.25], [0.4, 0.25, 0.35], [0.6, 0.3, 0.1],
                   [0.5, 0.1, 0.4])
    # The most likely class would call the first three pixels background.
    assert decide(probs).tolist() == [[1, 1, 2, 0, 2]]
    assert FOREGROUND_THRESHOLD == 0.5
    assert foreground(probs).tolist() == [[True, True, True, False, True]]  # "at least"


def test_threshold_moves_the_foreground_and_keeps_the_most_likely_foreground_class(rng):
    probs = rng.dirichlet(np.ones(4), size=(40, 50)).transpose(2, 0, 1).astype(np.float32)
    sizes = []
    for t in (0.2, 0.5, 0.8):
        labels = decide(probs, t)
        assert np.array_equal(labels > 0, 1 - probs[0] >= t)
        fg = labels > 0
        assert np.array_equal(labels[fg], probs[1:].argmax(0)[fg] + 1)
        sizes.append(int(fg.sum()))
    assert sizes[0] > sizes[1] > sizes[2] > 0
    # Two classes at 0.5: the most likely class, ties going to the foreground.
    two = pixels([0.7, 0.3], [0.3, 0.7], [0.5, 0.5])
    assert decide(two).tolist() == [[0, 1, 1]]


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.2, float("nan"), "half"])
def test_predictor_refuses_thresholds_outside_0_1(bad):
    with pytest.raises(InputError, match="foreground threshold"):
        Predictor(constant_bundle([0.5, 0.5], "semantic"), foreground_threshold=bad)


def test_prediction_and_instances_use_the_decision():
    """An instance model whose background is the most likely class everywhere (0.4), yet
    less likely than not: the labels cover every pixel; no pixel is sure to be interior,
    so there is no object. Sure of the interior (0.9), one object covers every pixel."""
    image = np.random.default_rng(0).random((2, 48, 40)).astype(np.float32)
    bundle = constant_bundle([0.4, 0.35, 0.25])
    pred = Predictor(bundle, device="cpu").predict(image, instances=True, probabilities=True)
    assert np.allclose(pred.probabilities[:, 0], 0.4, atol=5e-3)  # bf16 where fast
    assert (pred.labels == 1).all()
    assert (pred.instances == 0).all()
    sure = Predictor(constant_bundle([0.04, 0.9, 0.06]), device="cpu").predict(
        image, instances=True)
    assert (sure.labels == 1).all() and (sure.instances == 1).all()
    # A stricter threshold: 1 - 0.4 < 0.7, so nothing is foreground and no object is left.
    strict = Predictor(bundle, device="cpu", foreground_threshold=0.7).predict(
        image, instances=True)
    assert (strict.labels == 0).all() and (strict.instances == 0).all()


def test_instances_grow_from_sure_interiors_over_the_decided_foreground():
    """Two objects whose rims are 'boundary' with p(background) 0.45 and whose cores are
    sure interior: the rims are foreground and the watershed fills them. A third blob
    whose core is only p(interior) 0.6 is foreground in the labels but no object."""
    from napari_unet.core.decision import SEED_PROBABILITY

    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    probs = np.zeros((3, 30, 60), np.float32)
    probs[:] = np.array([0.9, 0.05, 0.05], np.float32)[:, None, None]
    for x0, core in ((4, 0.9), (22, 0.9), (42, 0.6)):
        probs[:, 5:25, x0 : x0 + 14] = np.array([0.45, 0.15, 0.4])[:, None, None]  # rim
        probs[:, 9:21, x0 + 4 : x0 + 10] = np.array([0.05, core, 0.95 - core])[:, None, None]
    assert 0.6 < SEED_PROBABILITY <= 0.9
    predictor = Predictor(bundle, device="cpu")
    inst = predictor.instances_2d(probs, min_size=5)
    labels = predictor.labels_2d(probs)
    assert inst.max() == 2
    assert np.array_equal(inst[:, :40] > 0, labels[:, :40] > 0)
    assert (inst[5:25, 4:18] == inst[15, 10]).all()  # rims belong to their object
    assert not (probs.argmax(0)[5:25, 4:18] > 0).all()  # the most likely class would not
    assert (labels[5:25, 42:56] > 0).all() and (inst[:, 40:] == 0).all()  # the unsure blob


def test_validation_during_training_uses_the_decision():
    """Validation IoU of a model predicting p(background) 0.4 everywhere: every pixel is
    foreground, so the IoU is the foreground share of the held-out labels, not 0."""
    rng = np.random.default_rng(2)
    labels = np.zeros((8, 32, 32), np.uint16)
    labels[:, 8:20, 8:20] = 1
    images = rng.random(labels.shape).astype(np.float32)
    data = TrainingData.from_annotations([images], [to_annotations(labels, "instance")])
    assert data.validation
    trainer = Trainer(constant_bundle([0.4, 0.35, 0.25]), data,
                      TrainConfig(iterations=1, device="cpu", patch_size=32, batch_size=2))
    truth = np.concatenate([p.target[0] for p in data.validation])
    expected = np.count_nonzero(truth > 0) / np.count_nonzero(truth >= 0)
    assert trainer.validate() == pytest.approx(expected)
