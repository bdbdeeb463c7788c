"""Images of several channels: picking them, per-channel normalisation, models that
record their channels, and a task only the second channel can solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.config import START_MODEL, TrainOptions
from napari_unet.core.errors import InputError
from napari_unet.core.io.channels import (
    as_model_input,
    parse_channels,
    pick_channels,
    stack_channels,
)
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.normalise import Normalisation
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.plan import plan_training
from napari_unet.core.train.trainer import Trainer
from tests.conftest import two_channel_blobs

#: A tiny new model trained for a fixed number of iterations: a few seconds on a CPU.
OPTIONS = dict(labels_kind="semantic", iterations=30, batch_size=4, patch_size=32,
               learning_rate=1e-2, base_channels=8, depth=2, device="cpu",
               start_model="none")


def _iou(pred: np.ndarray, truth: np.ndarray) -> float:
    p, t = pred > 0, truth > 0
    return float(np.count_nonzero(p & t) / max(1, np.count_nonzero(p | t)))


def _train(image, labels, channels):
    data = pick_channels(image, 1, channels)
    plan = plan_training([data], [to_annotations(labels > 0, "semantic")],
                         TrainOptions(channels=channels, **OPTIONS))
    trainer = Trainer(plan.bundle, plan.data, plan.config)
    for _ in trainer.fit():
        pass
    return trainer.bundle()


def test_parse_channels():
    assert parse_channels("0,2") == (0, 2)
    assert parse_channels(" 3 ") == (3,)
    assert parse_channels("2,0") == (2, 0)  # the order given is kept
    for bad, message in (("", "not a list"), ("0,,1", "not a list"), ("a", "not a channel"),
                         ("-1", "not a channel"), ("1.5", "not a channel"),
                         ("1,1", "given twice")):
        with pytest.raises(InputError, match=message):
            parse_channels(bad)


def test_pick_channels_gives_the_core_form():
    zcyx = np.arange(3 * 4 * 8 * 8).reshape(3, 4, 8, 8)
    assert pick_channels(zcyx, 1, None).shape == (3, 4, 8, 8)
    two = pick_channels(zcyx, 1, (2, 0))
    assert two.shape == (3, 2, 8, 8)
    assert np.array_equal(two[:, 0], zcyx[:, 2]) and np.array_equal(two[:, 1], zcyx[:, 0])
    assert np.array_equal(pick_channels(zcyx, 1, (3,)), zcyx[:, 3])  # one: no channel axis
    cyx = zcyx[0]
    assert pick_channels(cyx, 0, (0, 1)).shape == (1, 2, 8, 8)  # a 2D image: one slice
    czyx = np.moveaxis(zcyx, 1, 0)
    assert np.array_equal(pick_channels(czyx, 0, (1, 3)), zcyx[:, [1, 3]])
    with pytest.raises(InputError, match="channel 4 does not exist.*channels 0 to 3"):
        pick_channels(zcyx, 1, (0, 4))
    with pytest.raises(InputError, match="channel 1 does not exist.*one channel"):
        pick_channels(zcyx[:, 0], None, (1,))
    with pytest.raises(InputError, match="last two axes"):
        pick_channels(cyx, 2, None)
    stacked = stack_channels([zcyx[:, 0], zcyx[:, 1]])
    assert np.array_equal(stacked, zcyx[:, :2])
    assert stack_channels([cyx[0], cyx[1]]).shape == (1, 2, 8, 8)
    with pytest.raises(InputError, match="different shapes"):
        stack_channels([cyx[0], cyx[0, :4]])


def test_each_channel_is_normalised_on_its_own():
    rng = np.random.default_rng(0)
    image = np.stack([rng.normal(10, 1, (2, 32, 32)), rng.normal(5000, 300, (2, 32, 32))],
                     axis=1)
    out = Normalisation().apply(image)
    assert out.shape == image.shape and out.dtype == np.float32
    for z in range(2):
        for c in range(2):
            alone = Normalisation().apply(image[z, c])
            assert np.allclose(out[z, c], alone)
            assert -0.2 < np.percentile(out[z, c], 50) < 1.2


def test_model_input_is_checked_against_the_model():
    one = np.zeros((2, 16, 16), np.float32)
    assert as_model_input(one, 1).shape == (2, 1, 16, 16)
    assert as_model_input(one[0], 1).shape == (1, 1, 16, 16)
    two = np.zeros((2, 2, 16, 16), np.float32)
    assert as_model_input(two, 2) is two
    # A stack of two slices is never taken for two channels.
    with pytest.raises(InputError, match=r"reads 2 channels \(channels 0,2 .*has 1"):
        as_model_input(one, 2, (0, 2))
    with pytest.raises(InputError, match="reads 1 channel but the image has 2"):
        as_model_input(two, 1)


def test_bundle_records_its_channels(tmp_path):
    bundle = ModelBundle.new(UNetConfig(in_channels=2, n_classes=2, base_channels=4, depth=2),
                             channels=(0, 2))
    bundle.save(tmp_path / "m.pt")
    back = load_bundle(tmp_path / "m.pt")
    assert back.channels == (0, 2) and back.config.in_channels == 2
    # A model that does not say which reads the first channels; one channel: None.
    assert ModelBundle.new(UNetConfig(in_channels=3, base_channels=4, depth=2)).channels == (
        0, 1, 2)
    old = ModelBundle.new(UNetConfig(base_channels=4, depth=2))
    payload = old.to_dict()
    del payload["channels"]  # as files saved before channels were recorded
    torch.save(payload, tmp_path / "old.pt")
    assert load_bundle(tmp_path / "old.pt").channels is None
    payload["channels"] = [0, 0]
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(Exception, match="damaged.*channels"):
        load_bundle(tmp_path / "bad.pt")


def test_the_nuclei_model_starts_on_several_channels():
    image, labels = two_channel_blobs(np.random.default_rng(0))
    plan = plan_training([image], [to_annotations(labels > 0, "semantic")],
                         TrainOptions(iterations=1))  # painted strokes: the nuclei model
    assert plan.bundle.config.in_channels == 2 and plan.bundle.channels == (0, 1)
    weight = plan.bundle.state_dict["inc.double_conv.0.weight"]
    start = load_bundle(START_MODEL).state_dict["inc.double_conv.0.weight"]
    # Each channel gets half of the one-channel weights: it starts by seeing their mean.
    assert torch.allclose(weight[:, 0], start[:, 0] / 2)
    assert torch.allclose(weight[:, 1], start[:, 0] / 2)


def test_resuming_with_other_channels_is_refused():
    image, labels = two_channel_blobs(np.random.default_rng(0))
    bundle = ModelBundle.new(UNetConfig(base_channels=4, depth=2), "semantic")
    with pytest.raises(InputError, match="reads 1 channel but the images to train on have 2"):
        plan_training([image], [to_annotations(labels > 0, "semantic")],
                      TrainOptions(labels_kind="semantic", iterations=1), resume=bundle)


def test_the_second_channel_is_needed_and_used():
    """Disks visible only in channel 1: both channels learn them, channel 0 cannot."""
    image, labels = two_channel_blobs(np.random.default_rng(0))
    test, truth = two_channel_blobs(np.random.default_rng(1))
    both = _train(image, labels, (0, 1))
    assert both.channels == (0, 1) and both.config.in_channels == 2
    pred = Predictor(both, device="cpu").predict(test).labels
    assert pred.shape == truth.shape
    assert _iou(pred, truth) > 0.8
    first = _train(image, labels, (0,))
    assert first.channels == (0,) and first.config.in_channels == 1
    alone = Predictor(first, device="cpu").predict(pick_channels(test, 1, (0,))).labels
    assert _iou(alone, truth) < 0.4
    # The two-channel model refuses one channel instead of taking slices for channels.
    with pytest.raises(InputError, match="reads 2 channels"):
        Predictor(both, device="cpu").predict(test[:, 1])


def test_a_2d_image_of_channels_predicts_as_one_slice():
    image, _ = two_channel_blobs(np.random.default_rng(0), shape=(1, 48, 40))
    bundle = ModelBundle.new(UNetConfig(in_channels=2, base_channels=4, depth=2))
    result = Predictor(bundle, device="cpu").predict(image, probabilities=True,
                                                     instances=True)
    assert result.labels.shape == (1, 48, 40)
    flat = result.shaped((48, 40))
    assert flat.labels.shape == (48, 40) and flat.probabilities.shape == (2, 48, 40)
    assert flat.instances.shape == (48, 40)
