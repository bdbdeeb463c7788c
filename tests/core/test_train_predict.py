import dataclasses
import threading
import time

import numpy as np
import pytest
import torch

from napari_unet.core.checkpoint import ModelBundle
from napari_unet.core.data import TrainingData, to_annotations
from napari_unet.core.errors import InputError
from napari_unet.core.losses import edge_loss, masked_loss
from napari_unet.core.model import UNetConfig
from napari_unet.core.predict import Predictor, tile_starts
from napari_unet.core.train import Progress, TrainConfig, Trainer
from tests.conftest import blobs

TINY = UNetConfig(n_classes=2, base_channels=8, depth=2)
FAST = TrainConfig(iterations=40, batch_size=4, patch_size=32, learning_rate=1e-2,
                   validate_every=10, dice_weight=0.5)


def _data(blob_data, kind="semantic"):
    image, labels = blob_data
    ann = to_annotations(labels > 0 if kind == "semantic" else labels, kind)
    return image, labels, TrainingData.from_annotations([image], [ann])


def test_masked_loss_ignores_unannotated_pixels():
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    masked = target.clone()
    masked[:, :4] = -1
    garbage = target.clone()
    garbage[:, :4] = (target[:, :4] + 1) % 3
    garbage_masked = garbage.clone()
    garbage_masked[:, :4] = -1
    a = masked_loss(logits, masked, None, 0.5)
    b = masked_loss(logits, garbage_masked, None, 0.5)
    assert torch.allclose(a, b)
    assert not torch.allclose(a, masked_loss(logits, garbage, None, 0.5))
    weights = torch.ones(2, 8, 8)
    assert torch.allclose(masked_loss(logits, masked, weights, 0.0),
                          masked_loss(logits, masked, None, 0.0))
    nothing = torch.full_like(target, -1)  # a patch without annotated pixels teaches nothing
    leaf = logits.clone().requires_grad_(True)
    empty = masked_loss(leaf, nothing, None, 0.5)
    empty.backward()
    assert empty.item() == 0 and torch.all(leaf.grad == 0)


def test_fit_learns_blobs_and_reports_progress(blob_data):
    image, labels, td = _data(blob_data)
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
    _, _, td = _data(blob_data)
    cfg = dataclasses.replace(FAST, iterations=None, seconds=1.5)
    trainer = Trainer(ModelBundle.new(TINY), td, cfg)
    records = list(trainer.fit())
    # The run ends with the first iteration that reaches the budget, however fast the CPU.
    assert records[-1].elapsed >= 1.5 and records[-1].fraction == 1.0
    assert all(r.elapsed < 1.5 for r in records[:-1])


def test_stop_from_another_thread_ends_within_one_iteration(blob_data):
    _, _, td = _data(blob_data)
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
    _, _, td = _data(blob_data)
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
    _, _, td = _data(blob_data)
    first = Trainer(ModelBundle.new(TINY), td, dataclasses.replace(FAST, iterations=5))
    list(first.fit())
    path = tmp_path / "m.pt"
    first.bundle().save(path)
    from napari_unet.core.checkpoint import load_bundle

    loaded = load_bundle(path)
    assert loaded.iterations == 5 and loaded.optimizer_state is not None
    second = Trainer(loaded, td, dataclasses.replace(FAST, iterations=3))
    state = second.optimizer.state_dict()["state"]
    assert int(state[0]["step"]) == 5  # AdamW moments carried over
    records = list(second.fit())
    assert [r.iteration for r in records] == [6, 7, 8]
    assert len(second.bundle().history) == 2


def test_fine_tuning_adds_a_class(blob_data):
    image, labels, td = _data(blob_data)
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


def test_bad_training_settings_are_refused():
    with pytest.raises(InputError):
        TrainConfig(patch_size=30)
    with pytest.raises(InputError):
        TrainConfig(iterations=0)
    with pytest.raises(InputError, match="edge"):
        TrainConfig(edge_weight=-1)
    with pytest.raises(InputError, match="anchor"):
        TrainConfig(anchor_weight=-0.5)


@pytest.mark.parametrize("size,tile,overlap", [(100, 64, 16), (2048, 512, 64), (30, 64, 16),
                                               (1000, 512, 64)])
def test_tiles_cover_evenly_and_align(size, tile, overlap):
    t, starts = tile_starts(size, tile, overlap, 16)
    assert t % 16 == 0 and t <= max(tile, -(-size // 16) * 16)
    assert starts[0] == 0 and starts[-1] + t >= size
    covered = np.zeros(max(size, t), bool)
    for s in starts:
        covered[s : s + t] = True
    assert covered[:size].all()
    for a, b in zip(starts, starts[1:]):
        assert a + t - b >= overlap


def test_tiled_and_untiled_probabilities_agree_away_from_the_border(rng):
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=3), seed=1)
    image = rng.normal(size=(300, 260)).astype(np.float32)
    untiled = Predictor(bundle, tile_size=1024).probabilities_2d(image)
    tiled = Predictor(bundle, tile_size=128, overlap=64, batch_size=3).probabilities_2d(image)
    assert tiled.shape == untiled.shape == (3, 300, 260)
    assert np.allclose(tiled.sum(0), 1, atol=1e-5)
    inner = (slice(None), slice(40, -40), slice(40, -40))
    assert np.abs(tiled[inner] - untiled[inner]).max() < 0.02
    assert np.abs(tiled[inner] - untiled[inner]).mean() < 1e-3


def test_predict_stack_slices_progress_and_probabilities(blob_data):
    image, _ = blob_data
    bundle = ModelBundle.new(TINY)
    seen = []
    pred = Predictor(bundle, tile_size=32, overlap=8).predict(
        image, slices=[1], probabilities=True, progress=lambda d, t: seen.append((d, t)))
    assert pred.labels.shape == image.shape and pred.labels.dtype == np.uint8
    assert pred.probabilities.shape == (2, 2, 64, 64)
    assert (pred.probabilities[0] == 0).all()  # slice 0 not predicted
    assert np.allclose(pred.probabilities[1].sum(0), 1, atol=1e-5)
    assert seen == [(1, 1)]
    with pytest.raises(InputError):
        Predictor(bundle).predict(np.zeros((2, 2, 8, 8)))


def test_instances_split_touching_objects():
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    probs = np.zeros((3, 20, 30), np.float32)
    probs[0] = 1
    probs[:, 5:15, 3:13] = np.array([0, 1, 0])[:, None, None]
    probs[:, 5:15, 14:26] = np.array([0, 1, 0])[:, None, None]
    probs[:, 5:15, 13] = np.array([0, 0, 1])[:, None]  # boundary between them
    labels = probs.argmax(0)
    inst = Predictor(bundle).instances_2d(probs, labels, min_size=5)
    assert inst.max() == 2
    assert inst[10, 5] != inst[10, 20] and inst[0, 0] == 0


def test_foreground_threshold_shrinks_objects(rng):
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), seed=3)
    probs = rng.dirichlet(np.ones(3), size=(40, 50)).transpose(2, 0, 1).astype(np.float32)
    default = Predictor(bundle).labels_2d(probs)
    assert np.array_equal(default > 0, probs[0] <= 0.5)
    low = Predictor(bundle, foreground_threshold=0.3).labels_2d(probs)
    high = Predictor(bundle, foreground_threshold=0.8).labels_2d(probs)
    assert np.array_equal(high > 0, 1 - probs[0] >= 0.8)
    assert (high > 0).sum() < (default > 0).sum() < (low > 0).sum()
    assert np.array_equal(high[high > 0], probs[1:].argmax(0)[high > 0] + 1)
    with pytest.raises(InputError):
        Predictor(bundle, foreground_threshold=1.5)


def test_edge_loss_is_cheap_along_image_edges_and_dear_across_flat_regions():
    image = torch.zeros(1, 1, 48, 48)
    image[..., 12:36, 12:36] = 1.0
    inside = image[0, 0] > 0
    on_edges = torch.stack([~inside, inside]).float()[None] * 20 - 10
    wider = torch.zeros(48, 48, dtype=torch.bool)
    wider[8:40, 8:40] = True  # the outline crosses flat background
    across = torch.stack([~wider, wider]).float()[None] * 20 - 10
    assert edge_loss(on_edges, image) < 0.05 * edge_loss(across, image)
    logits = across.clone().requires_grad_(True)
    edge_loss(logits, image).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # pairs of annotated pixels are left to the annotation
    annotated = torch.zeros(1, 48, 48, dtype=torch.bool)
    assert edge_loss(across, image, free=annotated) == 0
    assert torch.isclose(edge_loss(across, image, free=~annotated), edge_loss(across, image))
    half = annotated.clone()
    half[:, :, 24:] = True
    assert 0 < edge_loss(across, image, free=half) < edge_loss(across, image)


def test_edge_loss_moves_outlines_from_the_unpainted_band_onto_the_edges(rng):
    """Strokes inside the objects and background far from them leave a band in which
    cross-entropy alone cannot place the outline; the edge loss puts it on the edge."""
    from scipy import ndimage as ndi

    image, labels = blobs(rng, shape=(4, 64, 64), n=5, radius=8)
    fg = labels > 0
    ann = np.zeros(labels.shape, np.uint8)
    ann[ndi.binary_erosion(fg, iterations=4, structure=np.ones((1, 3, 3)))] = 2
    ann[~ndi.binary_dilation(fg, iterations=6, structure=np.ones((1, 3, 3)))] = 1
    td = TrainingData.from_annotations([image], [ann])
    errors = []
    for weight in (0.0, 1.0):
        cfg = TrainConfig(iterations=80, batch_size=4, patch_size=32, learning_rate=1e-2,
                          edge_weight=weight, seed=1)
        trainer = Trainer(ModelBundle.new(TINY, seed=1), td, cfg)
        list(trainer.fit())
        pred = Predictor(trainer.bundle()).predict(image).labels > 0
        errors.append(np.count_nonzero(pred != fg))
    assert errors[1] < 0.7 * errors[0], errors


def test_batches_cut_on_the_device_equal_the_sampler_batches(blob_data):
    """The GPU path (data kept on the device) cuts the same patches as the CPU sampler."""
    from napari_unet.core.batches import DeviceBatches
    from napari_unet.core.data import PatchSampler

    image, labels = blob_data
    weights = np.ones(image.shape, np.float32)
    weights[1] = 2.0
    td = TrainingData.from_annotations([image, image[:1]], [to_annotations(labels, "instance"),
                                       to_annotations(labels[:1], "instance")],
                                       weights=[weights, None], validation_fraction=0)
    a, b = (PatchSampler(td.train, 3, 32, seed=5) for _ in range(2))
    on_device = DeviceBatches(a, 6, torch.device("cpu"))
    for _ in range(3):
        x, y, w = on_device.get()
        xs, ys, ws = b.sample(6)
        assert torch.equal(x, torch.from_numpy(xs)) and torch.equal(y, torch.from_numpy(ys))
        assert y.dtype == torch.int64 and torch.equal(w, torch.from_numpy(ws))
    assert not DeviceBatches.fits(a, torch.device("cpu"))  # the CPU keeps its sampling thread


def test_anchor_keeps_unannotated_pixels_near_the_starting_model(blob_data):
    image, labels, td = _data(blob_data)
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
    from napari_unet.core.plan import start_bundle

    shipped = Trainer(start_bundle("annotation", 2), few,
                      TrainConfig(iterations=1, patch_size=32, anchor_weight=1.0))
    list(shipped.fit())
    assert shipped.bundle().history[-1]["anchor_weight"] == 1.0
    fresh = Trainer(ModelBundle.new(TINY), few, TrainConfig(iterations=1, patch_size=32,
                                                            anchor_weight=1.0))
    list(fresh.fit())
    assert fresh.bundle().history[-1]["anchor_weight"] == 0.0
