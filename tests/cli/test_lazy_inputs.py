"""``train`` and ``predict`` on OME-Zarr folders and on TIFFs too large to read whole."""

import numpy as np
import pytest
import tifffile
import zarr

from napari_unet.cli import main
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor
from tests.conftest import blobs
from tests.core.io.test_lazy import folder_digest, write_ome_zarr

TINY = ["--base-channels", "4", "--depth", "2", "--batch-size", "2", "--patch-size", "32"]


@pytest.fixture
def zarr_pair(tmp_path):
    image, labels = blobs(np.random.default_rng(1), shape=(4, 64, 64))
    image = image.astype(np.uint16)
    ip = write_ome_zarr(tmp_path / "img.ome.zarr", image, scale=(2.0, 0.5, 0.5),
                        chunks=(1, 32, 32))
    lp = write_ome_zarr(tmp_path / "lab.ome.zarr", labels, scale=(2.0, 0.5, 0.5),
                        chunks=(1, 64, 64))
    return ip, lp, image, labels


@pytest.mark.parametrize("lazy", [False, True], ids=["fits", "lazy"])
def test_train_and_predict_on_ome_zarr(zarr_pair, tmp_path, capsys, monkeypatch, lazy):
    ip, lp, image, _ = zarr_pair
    if lazy:  # a limit below the image's size: read chunk by chunk, slice by slice
        monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", str(image.nbytes // 3))
    before = folder_digest(ip)
    model = tmp_path / "m.pt"
    assert main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "instance",
                 "--out", str(model), "--iterations", "3", "--seed", "1", *TINY]) == 0
    bundle = load_bundle(model)
    assert bundle.iterations == 3 and bundle.n_classes == 3
    out = tmp_path / "pred.tif"
    assert main(["predict", "--model", str(model), "--image", str(ip), "--out", str(out),
                 "--instances"]) == 0
    err = capsys.readouterr().err
    assert ("read lazily" in err) == lazy
    written = tifffile.TiffFile(out)
    labels = written.asarray()
    assert labels.shape == image.shape
    expected = Predictor(bundle).predict(image, instances=True).instances
    np.testing.assert_array_equal(labels, expected)
    assert folder_digest(ip) == before


def test_predict_of_a_lazy_tiff_writes_the_same_labels(tmp_path, capsys, monkeypatch):
    image, _ = blobs(np.random.default_rng(2), shape=(5, 64, 48))
    ip = tmp_path / "big.tif"
    tifffile.imwrite(ip, image.astype(np.float32), tile=(16, 16))
    model = tmp_path / "m.pt"
    bundle = ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2), seed=4)
    bundle.save(model)
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "10000")
    out = tmp_path / "labels.tif"
    assert main(["predict", "--model", str(model), "--image", str(ip), "--out", str(out)]) == 0
    assert "read lazily" in capsys.readouterr().err
    expected = Predictor(bundle).predict(image).labels
    np.testing.assert_array_equal(tifffile.imread(out), expected)
    # Probabilities of an image this large are refused before anything is written.
    prob = tmp_path / "prob.tif"
    assert main(["predict", "--model", str(model), "--image", str(ip), "--out",
                 str(tmp_path / "other.tif"), "--probabilities", str(prob)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--probabilities" in err[0]
    assert not prob.exists() and not (tmp_path / "other.tif").exists()


def _not_ome(path):
    zarr.open_group(str(path), mode="w").create_array("x", shape=(4, 4), dtype="u1")


def _missing_level(path):
    import shutil

    write_ome_zarr(path, np.zeros((2, 8, 8), np.uint8))
    shutil.rmtree(path / "0")


def _wrong_dims(path):
    write_ome_zarr(path, np.zeros((8, 8), np.uint8), axes="zyx", scale=(1, 1, 1),
                   chunks=(8, 8))


@pytest.mark.parametrize("make, message", [
    (_not_ome, "not an OME-Zarr image"),
    (_missing_level, "level '0' is missing"),
    (_wrong_dims, "3 axes"),
], ids=["not-ome-zarr", "missing-level", "wrong-dims"])
def test_bad_zarr_inputs_are_one_line_and_exit_2(tmp_path, capsys, make, message):
    bad = tmp_path / "bad.zarr"
    make(bad)
    model = tmp_path / "m.pt"
    ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2)).save(model)
    out = tmp_path / "out.tif"
    assert main(["predict", "--model", str(model), "--image", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
    lab = tmp_path / "lab.tif"
    tifffile.imwrite(lab, np.ones((2, 8, 8), np.uint8))
    assert main(["train", "--image", str(bad), "--labels", str(lab), "--out",
                 str(tmp_path / "n.pt"), "--iterations", "1", *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
