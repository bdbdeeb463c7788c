"""``predict`` runs torch on the thread count chosen for this CPU (measured, or
``NAPARI_UNET_THREADS``), as training does."""

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.cli import main
from napari_unet.core.config import START_MODEL
from napari_unet.core.models import device, speed
from tests.conftest import blobs


@pytest.fixture
def threads(monkeypatch):
    """Choose the thread count through the environment; torch's and the cached choice
    are restored afterwards."""
    before = torch.get_num_threads()

    def choose(n: int) -> None:
        monkeypatch.setenv("NAPARI_UNET_PRECISION", "fp32")
        monkeypatch.setenv("NAPARI_UNET_THREADS", str(n))
        speed.cpu_choice.cache_clear()
        device.bf16_supported.cache_clear()

    yield choose
    torch.set_num_threads(before)
    speed.cpu_choice.cache_clear()
    device.bf16_supported.cache_clear()


@pytest.mark.parametrize("n", [1, 3])
def test_predict_uses_the_chosen_thread_count(n, threads, tmp_path):
    image, _ = blobs(np.random.default_rng(2), shape=(1, 64, 64), n=3, radius=6)
    tifffile.imwrite(tmp_path / "image.tif", image[0])
    torch.set_num_threads(2)  # another count before
    threads(n)
    assert main(["-q", "predict", "--model", str(START_MODEL), "--image",
                 str(tmp_path / "image.tif"), "--out", str(tmp_path / "labels.tif"),
                 "--device", "cpu"]) == 0
    assert torch.get_num_threads() == n
    assert tifffile.imread(tmp_path / "labels.tif").shape == (64, 64)
