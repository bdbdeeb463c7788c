"""Device choice, precision and threads (napari_unet.core.models.device)."""

from __future__ import annotations

import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.models import device, speed


def test_auto_picks_an_available_device():
    chosen = device.select_device("auto")
    assert chosen.type == ("cuda" if torch.cuda.is_available() else chosen.type)
    assert device.select_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu0", "tpu", "meta-ish"])
def test_unknown_devices_are_refused_with_a_sentence(name):
    with pytest.raises(InputError, match="unknown device"):
        device.select_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="refusal only where there is no GPU")
def test_cuda_without_a_gpu_is_refused():
    with pytest.raises(InputError, match="no CUDA GPU"):
        device.select_device("cuda")


@pytest.fixture
def precision(monkeypatch):
    """Set the precision the CPU measurement would choose, then forget it again."""

    def choose(name: str) -> None:
        monkeypatch.setenv("NAPARI_UNET_PRECISION", name)
        monkeypatch.setenv("NAPARI_UNET_THREADS", "1")
        speed.cpu_choice.cache_clear()
        device.bf16_supported.cache_clear()

    yield choose
    speed.cpu_choice.cache_clear()
    device.bf16_supported.cache_clear()


def test_autocast_follows_the_measured_choice(precision):
    x = torch.randn(1, 1, 8, 8)
    conv = torch.nn.Conv2d(1, 1, 3)
    cpu = torch.device("cpu")
    precision("fp32")
    with device.autocast(cpu):
        assert conv(x).dtype == torch.float32
    if speed.oneDNN_bf16():
        precision("bf16")
        with device.autocast(cpu):
            assert conv(x).dtype == torch.bfloat16
        with device.autocast(cpu, enabled=False):  # mixed_precision=False always wins
            assert conv(x).dtype == torch.float32


def test_channels_last_where_it_is_fast():
    assert device.prefers_channels_last(torch.device("cpu"))
    assert not device.prefers_channels_last(torch.device("meta"))
