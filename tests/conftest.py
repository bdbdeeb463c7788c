from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from napari_unet.core.models.speed import logical_cores

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Tests (and the command lines they start) train in fp32 on every core instead of first
# timing this CPU (napari_unet.core.models.speed), whose answer depends on the machine and its
# load. tests/core/models/test_speed.py and the fresh-process GUI test take the measured path.
os.environ.setdefault("NAPARI_UNET_PRECISION", "fp32")
os.environ.setdefault("NAPARI_UNET_THREADS", str(logical_cores()))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def blobs(rng: np.random.Generator, shape=(2, 64, 64), n=6, radius=6):
    """A tiny stack of bright disks on a dark noisy background, with instance labels."""
    z, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    labels = np.zeros(shape, np.uint16)
    for k in range(z):
        for i in range(n):
            cy, cx = rng.integers(radius, h - radius), rng.integers(radius, w - radius)
            labels[k][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i + 1
    image = (labels > 0) * 200.0 + rng.normal(20, 10, shape)
    return image.astype(np.float32), labels


def two_channel_blobs(rng: np.random.Generator, shape=(2, 64, 64), n=6, radius=6):
    """Disks that only the second channel shows: (Z, 2, Y, X) float32 and instance labels.

    Channel 0 is the same noisy texture everywhere, inside the disks and outside; channel
    1 carries the disks (as :func:`blobs`). A model that reads channel 0 alone cannot
    find them."""
    _, labels = blobs(rng, shape=shape, n=n, radius=radius)
    texture = rng.normal(100, 30, shape)
    signal = (labels > 0) * 200.0 + rng.normal(20, 10, shape)
    return np.stack([texture, signal], axis=1).astype(np.float32), labels


def constant_bundle(probs, kind: str = "instance"):
    """A real model that predicts ``probs`` (one per class) at every pixel of any image."""
    import torch

    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    bundle = ModelBundle.new(UNetConfig(n_classes=len(probs), base_channels=4, depth=2), kind)
    state = dict(bundle.state_dict)
    state["outc.conv.weight"] = torch.zeros_like(state["outc.conv.weight"])
    state["outc.conv.bias"] = torch.log(torch.tensor(probs, dtype=torch.float32))
    bundle.state_dict = state
    return bundle


@pytest.fixture
def cli(capsys):
    """Run the command line; return (exit status, stderr)."""

    from napari_unet.cli import main as _main

    def run(*args) -> tuple[int, str]:
        try:
            rc = _main(["-q", *map(str, args)])
        except SystemExit as exc:  # refused by the argument parser
            rc = exc.code
        return rc, capsys.readouterr().err

    return run


@pytest.fixture
def blob_data(rng):
    return blobs(rng)


def shared_data(*parts: str) -> Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available at {path}")
    return path


@pytest.fixture
def crash_mid_write(monkeypatch):
    """Call it to make tifffile write half a file and then find the disk full."""
    import tifffile

    def imwrite(path, data, **kwargs):
        with open(path, "wb") as fh:
            fh.write(b"II*\x00half a TIFF")
        raise OSError(28, "No space left on device")

    return lambda: monkeypatch.setattr(tifffile, "imwrite", imwrite)
