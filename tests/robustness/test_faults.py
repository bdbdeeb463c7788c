"""Faults at run time: out of memory, a failing GPU, Stop before the first iteration.

Memory and device failures are simulated by a model whose forward raises what torch
raises; prediction retries with smaller batches and tiles, training stops with a clear
message and, on the command line, keeps what it learnt until then.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.core.errors import PredictionError, TrainingError
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.models.unet import UNet
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.trainer import TrainConfig, Trainer

from .conftest import TINY, assert_refused, sparse_annotations, tiny_bundle

CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"
CPU_OOM = "DefaultCPUAllocator: can't allocate memory: you tried to allocate 8589934592 bytes"
CUDA_GONE = "CUDA error: unspecified launch failure"


class Faulty:
    """A forward that raises ``error`` on the calls ``when(batch, call)`` says."""

    def __init__(self, monkeypatch, error, when):
        self.calls = 0
        self.raised = 0
        self.error, self.when = error, when
        original = UNet.forward

        def forward(model, x):
            self.calls += 1
            if self.when(x.shape[0], x.shape[-1], self.calls):
                self.raised += 1
                raise self.error
            return original(model, x)

        monkeypatch.setattr(UNet, "forward", forward)


def _image(shape=(150, 170)):
    rng = np.random.default_rng(0)
    return rng.normal(100, 20, shape).astype(np.float32)


@pytest.mark.parametrize("error", [torch.OutOfMemoryError(CUDA_OOM), RuntimeError(CPU_OOM),
                                   MemoryError()], ids=["cuda", "cpu", "numpy"])
def test_prediction_retries_with_smaller_batches(error, monkeypatch):
    bundle = tiny_bundle()
    image = _image()
    expected = Predictor(bundle, device="cpu", tile_size=64, overlap=16, batch_size=1,
                         mixed_precision=False).probabilities_2d(image)
    faulty = Faulty(monkeypatch, error, lambda batch, side, call: batch > 1)
    predictor = Predictor(bundle, device="cpu", tile_size=64, overlap=16, batch_size=8,
                          mixed_precision=False)
    probs = predictor.probabilities_2d(image)
    assert faulty.raised == 3 and predictor.batch_size == 1  # 8, then 4, then 2 failed
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_prediction_retries_with_smaller_tiles(monkeypatch):
    faulty = Faulty(monkeypatch, torch.OutOfMemoryError(CUDA_OOM),
                    lambda batch, side, call: side > 128)
    predictor = Predictor(tiny_bundle(), device="cpu", tile_size=512, overlap=16, batch_size=1,
                          mixed_precision=False)
    result = predictor.predict(_image((300, 260)), probabilities=True)
    assert faulty.raised >= 1 and predictor.tile_size <= 128
    assert result.labels.shape == (300, 260)
    np.testing.assert_allclose(result.probabilities.sum(0), 1.0, atol=1e-4)


def test_prediction_out_of_memory_at_the_smallest_tile(monkeypatch):
    Faulty(monkeypatch, torch.OutOfMemoryError(CUDA_OOM), lambda *_: True)
    with pytest.raises(PredictionError, match="out of memory.*one tile of 64 pixels"):
        Predictor(tiny_bundle(), device="cpu", tile_size=256).predict(_image())


def test_prediction_when_the_gpu_disappears(monkeypatch):
    Faulty(monkeypatch, RuntimeError(CUDA_GONE), lambda *_: True)
    with pytest.raises(PredictionError, match="GPU failed or disappeared.*CPU"):
        Predictor(tiny_bundle(), device="cpu").predict(_image())


def test_a_bug_is_not_disguised(monkeypatch):
    Faulty(monkeypatch, RuntimeError("mat1 and mat2 shapes cannot be multiplied"),
           lambda *_: True)
    with pytest.raises(RuntimeError, match="mat1") as info:
        Predictor(tiny_bundle(), device="cpu").predict(_image())
    assert not isinstance(info.value, PredictionError)


def _trainer(**options) -> Trainer:
    image = _image((2, 48, 48))
    data = TrainingData.from_annotations([image], [sparse_annotations(image.shape)])
    config = TrainConfig(iterations=5, batch_size=2, patch_size=32, device="cpu", **options)
    return Trainer(tiny_bundle(), data, config)


def test_training_out_of_memory_is_a_clear_error(monkeypatch):
    trainer = _trainer()
    Faulty(monkeypatch, torch.OutOfMemoryError(CUDA_OOM), lambda b, s, call: call == 3)
    with pytest.raises(TrainingError, match="out of memory.*lower the batch or patch size"):
        list(trainer.fit())
    assert trainer.run_iteration == 2
    assert trainer.bundle().iterations == 2  # the weights of two iterations are kept


def test_stop_before_the_first_iteration():
    trainer = _trainer()
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.stop()
    assert list(trainer.fit()) == []
    bundle = trainer.bundle()
    assert bundle.iterations == 0 and bundle.history == []
    for key, value in bundle.state_dict.items():
        assert torch.equal(value, before[key])


# ----------------------------------------------------------------- command line
@pytest.fixture
def files(image_pair, tmp_path):
    ip, lp = image_pair
    return ip, lp, tmp_path / "m.pt"


def test_cli_training_out_of_memory_keeps_the_iterations_done(files, cli, monkeypatch):
    ip, lp, model = files
    Faulty(monkeypatch, torch.OutOfMemoryError(CUDA_OOM), lambda b, s, call: call == 3)
    result = cli("train", "--image", ip, "--labels", lp, "--out", model, *TINY[:-1], "5")
    assert_refused(result, r"out of memory.*2 iterations trained until then were saved")
    assert load_bundle(model).iterations == 2


def test_cli_training_out_of_memory_at_once(files, cli, monkeypatch):
    ip, lp, model = files
    Faulty(monkeypatch, RuntimeError(CPU_OOM), lambda *_: True)
    assert_refused(cli("train", "--image", ip, "--labels", lp, "--out", model, *TINY),
                   "ran out of memory")
    assert not model.exists()


def test_cli_training_when_the_gpu_disappears(files, cli, monkeypatch):
    ip, lp, model = files
    Faulty(monkeypatch, RuntimeError(CUDA_GONE), lambda b, s, call: call == 2)
    assert_refused(cli("train", "--image", ip, "--labels", lp, "--out", model, *TINY),
                   r"Train stopped because the GPU failed or disappeared \(CUDA error")
    assert not model.exists()


def test_cli_prediction_when_the_gpu_disappears(files, model_file, cli, monkeypatch):
    ip, _, _ = files
    out = ip.parent / "labels.tif"
    Faulty(monkeypatch, RuntimeError(CUDA_GONE), lambda *_: True)
    assert_refused(cli("predict", "--model", model_file, "--image", ip, "--out", out),
                   "GPU failed or disappeared")
    assert not out.exists()


def test_cli_prediction_survives_running_out_of_memory(files, model_file, cli, monkeypatch):
    ip, _, _ = files
    out = ip.parent / "labels.tif"
    faulty = Faulty(monkeypatch, torch.OutOfMemoryError(CUDA_OOM),
                    lambda b, s, call: call == 1)
    rc, err = cli("predict", "--model", model_file, "--image", ip, "--out", out)
    assert rc == 0, err
    assert faulty.raised == 1 and tifffile.imread(out).shape == (3, 40, 40)
