"""Channels of a TIFF too large to read whole: one channel is read lazily (chosen with
``--channels`` or the model's own), several are refused in one line before anything is
read or written."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor
from tests.conftest import two_channel_blobs

TINY = ["--labels-kind", "semantic", "--base-channels", "4", "--depth", "2", "--batch-size",
        "2", "--patch-size", "32", "--iterations", "3", "--seed", "1"]


@pytest.fixture
def big(tmp_path, monkeypatch):
    """A ZCYX hyperstack of two channels (the disks in channel 1), its labels, and a
    memory limit below its size, so that it is opened lazily."""
    image, labels = two_channel_blobs(np.random.default_rng(3), shape=(5, 64, 48))
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, image, imagej=True, metadata={"axes": "ZCYX"})
    lab = tmp_path / "big_labels.tif"
    tifffile.imwrite(lab, (labels > 0).astype(np.uint8))
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", str(image.nbytes // 3))
    return path, lab, image


def run(capsys, *args) -> tuple[int, list[str]]:
    rc = main([*map(str, args)])
    return rc, capsys.readouterr().err.strip().splitlines()


def test_the_model_channel_of_a_lazy_image_is_predicted_slice_by_slice(big, tmp_path,
                                                                         capsys):
    path, _, image = big
    model = tmp_path / "m.pt"
    bundle = replace(ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2),
                                     seed=4), channels=(1,))
    bundle.save(model)
    out = tmp_path / "labels.tif"
    rc, err = run(capsys, "predict", "--model", model, "--image", path, "--out", out)
    assert rc == 0 and "read lazily" in err[-1]
    expected = Predictor(bundle).predict(image[:, 1]).labels
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    # --channels wins over the model's: channel 0, still lazily.
    other = tmp_path / "other.tif"
    rc, err = run(capsys, "predict", "--model", model, "--image", path, "--out", other,
                  "--channels", "0")
    assert rc == 0 and "read lazily" in err[-1]
    np.testing.assert_array_equal(tifffile.imread(other),
                                  Predictor(bundle).predict(image[:, 0]).labels)


def test_several_channels_of_a_lazy_image_are_refused_in_one_line(big, tmp_path, capsys):
    path, lab, _ = big
    model = tmp_path / "two.pt"
    ModelBundle.new(UNetConfig(in_channels=2, n_classes=2, base_channels=4, depth=2),
                    seed=4).save(model)
    out = tmp_path / "labels.tif"
    rc, err = run(capsys, "predict", "--model", model, "--image", path, "--out", out)
    assert rc == 2 and len(err) == 1, err
    assert "too large to hold in memory and has 2 channels" in err[0]
    assert not out.exists()
    trained = tmp_path / "m.pt"
    rc, err = run(capsys, "train", "--image", path, "--labels", lab, "--out", trained, *TINY)
    assert rc == 2 and len(err) == 1 and "has 2 channels" in err[0], err
    assert not trained.exists()


def test_training_on_one_channel_of_a_lazy_image_records_it(big, tmp_path, capsys):
    path, lab, _ = big
    model = tmp_path / "m.pt"
    rc, err = run(capsys, "train", "--image", path, "--labels", lab, "--out", model,
                  "--channels", "1", *TINY)
    assert rc == 0, err
    bundle = load_bundle(model)
    assert bundle.iterations == 3 and bundle.channels == (1,) and bundle.in_channels == 1
