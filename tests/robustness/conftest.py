"""Fixtures for the robustness tests: real TIFF files and real tiny models."""

from __future__ import annotations

import re

import numpy as np
import pytest
import tifffile

from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig

#: A model and a run small enough for tests.
TINY = ["--base-channels", "4", "--depth", "2", "--batch-size", "2", "--patch-size", "32",
        "--iterations", "2"]


def tiny_bundle(n_classes: int = 2, in_channels: int = 1, seed: int = 0) -> ModelBundle:
    return ModelBundle.new(
        UNetConfig(n_classes=n_classes, in_channels=in_channels, base_channels=4, depth=2),
        seed=seed,
    )


def sparse_annotations(shape, slices=None) -> np.ndarray:
    """A few strokes of background (1) and foreground (2) on the given slices."""
    ann = np.zeros(shape, np.uint8)
    view = ann[np.newaxis] if ann.ndim == 2 else ann
    for z in range(view.shape[0]) if slices is None else slices:
        view[z, 2:8, 2:30] = 1
        view[z, 20:28, 20:28] = 2
    return ann


@pytest.fixture
def image_pair(tmp_path):
    """A 3-slice uint16 stack with sparse annotations, as TIFF files."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (3, 40, 40)).astype(np.uint16)
    image[:, 20:28, 20:28] += 2000
    ip, lp = tmp_path / "image.tif", tmp_path / "image_annotations.tif"
    tifffile.imwrite(ip, image, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(lp, sparse_annotations(image.shape), imagej=True, metadata={"axes": "ZYX"})
    return ip, lp


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "model.pt"
    tiny_bundle().save(path)
    return path


def assert_refused(result: tuple[int, str], pattern: str) -> None:
    """Exit status 2 and one line on stderr that matches ``pattern``."""
    rc, err = result
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("napari-unet: error:"), err
    assert re.search(pattern, lines[0]), lines[0]
