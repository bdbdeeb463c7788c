"""The training loop (napari_unet.core.train.trainer)."""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import Progress, TrainConfig, Trainer
from tests.core.kit import FAST, TINY, blob_training


def test_fit_learns_blobs_and_reports_progress(blob_data):
    image, labels, td = blob_training(blob_data)
    trainer = Trainer(ModelBundle.new(TINY), td, FAST)
    records = list(trainer.fit())
    assert len(records) == 40
    assert all(isinstance(r, Progress) for r in records)
    with pytest.raises(dataclasses.FrozenInstanceError):
        records[0].loss = 0.0
    assert [r.iteration for r in records] == list(range(1, 41))
    assert records[-1].fraction == 1.0 and records[-1].eta == 0.0
    assert np.mean([r.loss for r in records[-5:]]) < np.mean([r.loss for r in records[:5]])
    pred = Predictor(trainer.bundle()).predict(image)
    fg, gt = pred.labels > 0, labels > 0
    assert (fg & gt).sum() / (fg | gt).sum() > 0.5


def test_time_budget_bounds_the_run(blob_data):
    _, _, td = blob_training(blob_data)
    cfg = dataclasses.replace(FAST, iterations=None, seconds=1.5)
    trainer = Trainer(ModelBundle.new(TINY), td, cfg)
    records = list(trainer.fit())
    # The run ends with the first iteration that reaches the budget, however fast the CPU.
    assert records[-1].elapsed >= 1.5 and records[-1].fraction == 1.0
    assert all(r.elapsed < 1.5 for r in records[:-1])


def test_stop_from_another_thread_ends_within_one_iteration(blob_data):
    _, _, td = blob_training(blob_data)
    trainer = Trainer(ModelBundle.new(TINY), td, dataclasses.replace(FAST, iterations=100000))
    gen = trainer.fit()
    next(gen)
    threading.Thread(target=trainer.stop).start()
    time.sleep(0.05)
    rest = list(gen)
    assert len(rest) <= 1
    before = trainer.bundle()
    assert before.iterations == trainer.iteration >= 1
    assert not torch.equal(before.state_dict["outc.conv.weight"],
                           ModelBundle.new(TINY).state_dict["outc.conv.weight"])


def test_pause_and_resume_continue_the_count(blob_data):
    _, _, td = blob_training(blob_data)
    trainer = Trainer(ModelBundle.new(TINY), td, dataclasses.replace(FAST, iterations=6))
    gen = trainer.fit()
    assert next(gen).run_iteration == 1
    trainer.pause()
    got = []
    t = threading.Thread(target=lambda: got.append(next(gen)))
    t.start()
    time.sleep(0.3)
    assert not got and trainer.paused  # held between iterations
    trainer.resume()
    t.join(5)
    assert got[0].run_iteration == 2
    assert [p.run_iteration for p in gen] == [3, 4, 5, 6]


def test_continue_from_checkpoint_with_optimizer_state(blob_data, tmp_path):
    _, _, td = blob_training(blob_data)
    first = Trainer(ModelBundle.new(TINY), td, dataclasses.replace(FAST, iterations=5))
    list(first.fit())
    path = tmp_path / "m.pt"
    first.bundle().save(path)
    from napari_unet.core.models.checkpoint import load_bundle

    loaded = load_bundle(path)
    assert loaded.iterations == 5 and loaded.optimizer_state is not None
    second = Trainer(loaded, td, dataclasses.replace(FAST, iterations=3))
    state = second.optimizer.state_dict()["state"]
    assert int(state[0]["step"]) == 5  # AdamW moments carried over
    records = list(second.fit())
    assert [r.iteration for r in records] == [6, 7, 8]
    assert len(second.bundle().history) == 2


def test_fine_tuning_adds_a_class(blob_data):
    image, labels, td = blob_training(blob_data)
    trainer = Trainer(ModelBundle.new(TINY), td, dataclasses.replace(FAST, iterations=3))
    list(trainer.fit())
    ann = to_annotations(labels > 0, "semantic")
    ann[0, :4, :4] = 3  # a new third class
    td3 = TrainingData.from_annotations([image], [ann])
    old = trainer.bundle()
    more = Trainer(old, td3, dataclasses.replace(FAST, iterations=3))
    list(more.fit())
    new = more.bundle()
    assert new.n_classes == 3 and len(new.class_names) == 3
    assert Predictor(new).predict(image).labels.max() <= 2


def test_weights_count_in_the_loss(blob_data):
    image, labels = blob_data
    ann = to_annotations(labels > 0, "semantic")
    weights = np.ones(image.shape, np.float32)
    weights[0] = 3.0
    td = TrainingData.from_annotations([image], [ann], weights=[weights])
    trainer = Trainer(ModelBundle.new(TINY), td, dataclasses.replace(FAST, iterations=2))
    assert trainer.sampler.has_weights
    x, y, w = trainer.sampler.sample(8)
    assert set(np.unique(w)) <= {1.0, 3.0}
    list(trainer.fit())


def test_zoomed_training_cuts_larger_patches_and_learns(blob_data):
    image, labels, td = blob_training(blob_data)
    config = dataclasses.replace(FAST, augment=dataclasses.replace(FAST.augment, zoom=1.5))
    trainer = Trainer(ModelBundle.new(TINY), td, config)
    assert trainer.sampler.patch_size == int(np.ceil(config.patch_size * 1.5))
    records = list(trainer.fit())
    assert np.mean([r.loss for r in records[-5:]]) < np.mean([r.loss for r in records[:5]])
    pred = Predictor(trainer.bundle()).predict(image)
    fg, gt = pred.labels > 0, labels > 0
    assert (fg & gt).sum() / (fg | gt).sum() > 0.5


def test_bad_training_settings_are_refused():
    with pytest.raises(InputError):
        TrainConfig(patch_size=30)
    with pytest.raises(InputError):
        TrainConfig(iterations=0)
    with pytest.raises(InputError, match="edge"):
        TrainConfig(edge_weight=-1)
    with pytest.raises(InputError, match="anchor"):
        TrainConfig(anchor_weight=-0.5)


def test_anchor_keeps_unannotated_pixels_near_the_starting_model(blob_data):
    image, labels, td = blob_training(blob_data)
    start = Trainer(ModelBundle.new(TINY), td, FAST)
    list(start.fit())
    start = start.bundle()
    before = Predictor(start).predict(image, probabilities=True).probabilities[:, 1]
    ann = np.zeros(labels.shape, np.uint8)  # a few strokes: background on top, one object
    ann[:, :6] = 1
    ann[labels == labels[0].max()] = 2
    few = TrainingData.from_annotations([image], [ann], validation_fraction=0)
    drift = {}
    for weight in (0.0, 3.0):
        cfg = TrainConfig(iterations=30, batch_size=4, patch_size=32, learning_rate=1e-2,
                          anchor_weight=weight, seed=2)
        trainer = Trainer(start, few, cfg)
        list(trainer.fit())
        assert trainer.bundle().history[-1]["anchor_weight"] == weight
        after = Predictor(trainer.bundle()).predict(image, probabilities=True).probabilities[:, 1]
        drift[weight] = float(np.abs(after - before)[ann == 0].mean())
    assert drift[3.0] < 0.6 * drift[0.0], drift
    # the shipped starting model is anchored to; a fresh model has nothing to keep
    from napari_unet.core.train.plan import start_bundle

    shipped = Trainer(start_bundle("annotation", 2), few,
                      TrainConfig(iterations=1, patch_size=32, anchor_weight=1.0))
    list(shipped.fit())
    assert shipped.bundle().history[-1]["anchor_weight"] == 1.0
    fresh = Trainer(ModelBundle.new(TINY), few, TrainConfig(iterations=1, patch_size=32,
                                                            anchor_weight=1.0))
    list(fresh.fit())
    assert fresh.bundle().history[-1]["anchor_weight"] == 0.0
