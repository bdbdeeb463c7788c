"""``--channels`` on the command line: training on two channels of a real TIFF, the
model's channels used by default when predicting, and bad choices refused in one line."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import tifffile
import yaml

from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig
from tests.conftest import two_channel_blobs

TINY = ["--base-channels", "8", "--depth", "2", "--batch-size", "4", "--patch-size", "32",
        "--learning-rate", "0.01", "--iterations", "30"]


def refused(result, pattern: str) -> None:
    import re

    rc, err = result
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith("napari-unet: error:") and re.search(pattern, lines[0]), err


@pytest.fixture
def files(tmp_path):
    """ImageJ hyperstacks (Z, C, Y, X): a training pair and a test pair, the disks only in
    channel 1; and a 2D image of two channels (C, Y, X)."""
    out = {}
    for name, seed in (("train", 0), ("test", 1)):
        image, labels = two_channel_blobs(np.random.default_rng(seed))
        out[name] = tmp_path / f"{name}.tif"
        tifffile.imwrite(out[name], image, imagej=True, metadata={"axes": "ZCYX"})
        out[f"{name}_labels"] = tmp_path / f"{name}_labels.tif"
        tifffile.imwrite(out[f"{name}_labels"], (labels > 0).astype(np.uint8))
    flat, _ = two_channel_blobs(np.random.default_rng(2), shape=(1, 48, 40))
    out["flat"] = tmp_path / "flat.tif"
    tifffile.imwrite(out["flat"], flat[0], imagej=True, metadata={"axes": "CYX"})
    return out


def _iou(path, truth_path) -> float:
    pred, truth = tifffile.imread(path) > 0, tifffile.imread(truth_path) > 0
    return float(np.count_nonzero(pred & truth) / max(1, np.count_nonzero(pred | truth)))


def _train(cli, files, out, *extra):
    return cli("train", "--image", files["train"], "--labels", files["train_labels"],
               "--labels-kind", "semantic", "--out", out, *TINY, *extra)


def test_train_on_all_channels_and_predict_with_them(cli, files, tmp_path):
    model, pred = tmp_path / "both.pt", tmp_path / "pred.tif"
    assert _train(cli, files, model)[0] == 0  # no --channels: all of them
    bundle = load_bundle(model)
    assert bundle.channels == (0, 1) and bundle.config.in_channels == 2
    assert cli("predict", "--model", model, "--image", files["test"], "--out", pred)[0] == 0
    assert tifffile.imread(pred).shape == (2, 64, 64)
    assert _iou(pred, files["test_labels"]) > 0.8
    rc, err = cli("evaluate", "--model", model, "--image", files["test"], "--labels",
                  files["test_labels"], "--labels-kind", "semantic")
    assert rc == 0, err
    # A 2D image of two channels gives 2D labels.
    flat = tmp_path / "flat_labels.tif"
    assert cli("predict", "--model", model, "--image", files["flat"], "--out", flat)[0] == 0
    assert tifffile.imread(flat).shape == (48, 40)
    # The same channels named, in the same order: the same labels.
    again = tmp_path / "again.tif"
    assert cli("predict", "--model", model, "--image", files["test"], "--channels", "0,1",
               "--out", again)[0] == 0
    assert np.array_equal(tifffile.imread(again), tifffile.imread(pred))


def test_the_first_channel_alone_cannot_find_the_disks(cli, files, tmp_path):
    model, pred = tmp_path / "first.pt", tmp_path / "pred.tif"
    assert _train(cli, files, model, "--channels", "0")[0] == 0
    bundle = load_bundle(model)
    assert bundle.channels == (0,) and bundle.config.in_channels == 1
    # predict reads channel 0 of the two-channel file: the model's own channel.
    assert cli("predict", "--model", model, "--image", files["test"], "--out", pred)[0] == 0
    assert _iou(pred, files["test_labels"]) < 0.4


def test_a_channel_of_its_own_is_used_by_default(cli, files, tmp_path):
    """Trained on channel 1 of the file, the model predicts channel 1 of it unasked."""
    model, pred = tmp_path / "second.pt", tmp_path / "pred.tif"
    assert _train(cli, files, model, "--channels", "1")[0] == 0
    assert load_bundle(model).channels == (1,)
    assert cli("predict", "--model", model, "--image", files["test"], "--out", pred)[0] == 0
    assert _iou(pred, files["test_labels"]) > 0.8
    # A file of one channel: the model's channel 1 is not there; --channels 0 says which.
    single = tmp_path / "single.tif"
    tifffile.imwrite(single, tifffile.imread(files["test"])[:, 1])
    refused(cli("predict", "--model", model, "--image", single, "--out", pred),
            r"reads one channel \(channel 1 of its training images\) but single.tif has one "
            "channel.*--channels")
    assert cli("predict", "--model", model, "--image", single, "--channels", "0", "--out",
               pred)[0] == 0
    assert _iou(pred, files["test_labels"]) > 0.8


@pytest.mark.parametrize(("value", "message"), [
    ("a", "'a' is not a channel index"),
    ("0,,1", "not a list of channels"),
    ("1,1", "channel 1 is given twice"),
    ("-1", "not a channel index"),
    ("", "not a list of channels"),
])
def test_bad_channel_lists_are_refused(cli, files, tmp_path, value, message):
    for command in (["train", "--image", files["train"], "--labels", files["train_labels"],
                     "--out", tmp_path / "m.pt"],
                    ["predict", "--model", tmp_path / "m.pt", "--image", files["test"],
                     "--out", tmp_path / "p.tif"],
                    ["evaluate", "--model", tmp_path / "m.pt", "--image", files["test"],
                     "--labels", files["test_labels"], "--labels-kind", "semantic"]):
        refused(cli(*command, "--channels", value), f"--channels: .*{message}")
    assert not (tmp_path / "m.pt").exists() and not (tmp_path / "p.tif").exists()


def test_channels_that_do_not_fit_are_refused(cli, files, tmp_path):
    two = tmp_path / "two.pt"
    ModelBundle.new(UNetConfig(in_channels=2, base_channels=4, depth=2),
                    channels=(0, 1)).save(two)
    one = tmp_path / "one.pt"
    ModelBundle.new(UNetConfig(base_channels=4, depth=2)).save(one)  # as every older model
    single = tmp_path / "single.tif"
    tifffile.imwrite(single, tifffile.imread(files["test"])[:, 1])
    out = tmp_path / "p.tif"
    refused(cli("train", "--image", files["train"], "--labels", files["train_labels"],
                "--channels", "0,2", "--out", tmp_path / "m.pt"),
            "channel 2 of --channels 0,2 does not exist: train.tif has channels 0 to 1")
    refused(cli("predict", "--model", two, "--image", files["test"], "--channel", "5",
                "--out", out), "--channel 5 does not exist: test.tif has channels 0 to 1")
    refused(cli("predict", "--model", two, "--image", single, "--out", out),
            r"reads 2 channels \(channels 0,1 of its training images\) but single.tif has "
            "one channel")
    refused(cli("predict", "--model", two, "--image", files["test"], "--channels", "1",
                "--out", out), "reads 2 channels .* but the image has 1")
    refused(cli("predict", "--model", one, "--image", files["test"], "--out", out),
            r"image of 2 channels .* model reads one channel: choose it with --channels N "
            r"\(0 to 1\)")
    refused(cli("predict", "--model", one, "--image", files["test"], "--channel", "0,1",
                "--out", out), "one channel, not '0,1'")
    refused(cli("predict", "--model", one, "--image", files["test"], "--channel", "0",
                "--channels", "1", "--out", out), "already chosen")
    refused(cli("train", "--image", files["train"], "--labels", files["train_labels"],
                "--resume", one, "--out", tmp_path / "m.pt", "--iterations", "1"),
            "reads 1 channel but the images to train on have 2")
    refused(cli("export", "--model", two, "--out", tmp_path / "two.zip"),
            "reads 2 channels: give --test-image")
    assert not out.exists() and not (tmp_path / "m.pt").exists()
    # A model of one channel on one channel of the file works as it always did.
    assert cli("predict", "--model", one, "--image", files["test"], "--channels", "1",
               "--out", out)[0] == 0
    assert tifffile.imread(out).shape == (2, 64, 64)


def test_a_two_channel_model_exports_and_runs_from_its_package(cli, files, tmp_path):
    bioimageio_core = pytest.importorskip("bioimageio.core")  # the package export tests' extra
    model = tmp_path / "both.pt"
    assert cli("train", "--image", files["train"], "--labels", files["train_labels"],
               "--labels-kind", "semantic", "--out", model, *TINY[:-1], "3")[0] == 0
    package = tmp_path / "both.zip"
    rc, err = cli("export", "--model", model, "--out", package, "--test-image", files["test"])
    assert rc == 0, err
    with zipfile.ZipFile(package) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
        test_input = np.load(zf.open("test_input.npy"))
    channel = rdf["inputs"][0]["axes"][1]
    assert channel["type"] == "channel" and channel["channel_names"] == ["channel_0",
                                                                         "channel_1"]
    assert test_input.shape[:2] == (1, 2)
    assert rdf["config"]["napari_unet"]["channels"] == [0, 1]
    from_pt, from_zip = tmp_path / "pt.tif", tmp_path / "zip.tif"
    for source, out in ((model, from_pt), (package, from_zip)):
        assert cli("predict", "--model", source, "--image", files["test"], "--out", out,
                   "--device", "cpu")[0] == 0
    assert np.array_equal(tifffile.imread(from_pt), tifffile.imread(from_zip))
    summary = bioimageio_core.test_model(package)  # bioimage.io's own test of the package
    assert summary.status == "passed", summary.format()
