"""Fixtures of the command-line tests that predict folders."""

import numpy as np
import pytest
import tifffile

from tests.conftest import blobs


@pytest.fixture
def model(tmp_path):
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    path = tmp_path / "m.pt"
    ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance",
                    seed=3).save(path)
    return path


@pytest.fixture
def folder(tmp_path):
    """Three images: two 2D of different sizes and a stack of two slices."""
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(5)
    for name, shape in (("a", (1, 48, 64)), ("b", (1, 64, 40)), ("c", (2, 32, 32))):
        image, _ = blobs(rng, shape=shape, n=3, radius=5)
        tifffile.imwrite(images / f"{name}.tif", image[0] if shape[0] == 1 else image)
    return images
