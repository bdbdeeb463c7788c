"""Bounded memory, and one line instead of a traceback for the remaining odd inputs."""

from __future__ import annotations

import json
import os
import time
import tracemalloc

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.core.errors import ModelFileError
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.normalise import Normalisation
from napari_unet.core.predict import tiles as predict_module
from napari_unet.core.predict.tiles import Predictor

from .conftest import TINY, assert_refused, sparse_annotations, tiny_bundle


def _peak(fn) -> int:
    """Peak bytes allocated by numpy (and Python) while ``fn`` runs."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_normalisation_makes_one_float32_copy():
    image = np.random.default_rng(0).integers(0, 255, (2048, 2048), dtype=np.uint8)
    norm = Normalisation()
    peak = _peak(lambda: norm.apply(image))
    assert peak < 1.2 * image.size * 4  # the float32 result and a small sample


def test_a_big_slice_is_predicted_in_bands_with_bounded_memory(monkeypatch):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (2048, 2048), dtype=np.uint8)
    image[500:900, 300:1200] //= 4
    predictor = Predictor(tiny_bundle(), device="cpu")
    small = image[:400, :600]
    whole = predictor.predict(small).labels
    monkeypatch.setattr(predict_module, "BAND_PIXELS", 100 * 600)
    banded = predictor.predict(small).labels
    assert np.mean(banded == whole) > 0.999  # bands with context: the same labels
    monkeypatch.setattr(predict_module, "BAND_PIXELS", 512 * 1024)
    peak = _peak(lambda: predictor.predict(image))
    assert peak < 12 * image.nbytes, peak / image.nbytes


def test_a_model_that_declares_a_huge_architecture_is_refused_at_once(tmp_path):
    payload = tiny_bundle().to_dict()
    payload["architecture"].update(base_channels=20000, depth=6)
    path = tmp_path / "huge.pt"
    torch.save(payload, path)
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match="does not match the weights"):
        load_bundle(path)
    assert time.perf_counter() - start < 30  # only a guard: allocating it would take minutes


def _huge_ids(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 500, (2, 48, 48)).astype(np.uint16)
    truth = np.zeros(image.shape, np.uint32)
    truth[:, 5:15, 5:15] = 4_000_000_000
    truth[:, 25:40, 20:40] = 500_000_007
    image[truth > 0] += 1500
    ip, lp = tmp_path / "img.tif", tmp_path / "truth.tif"
    tifffile.imwrite(ip, image)
    tifffile.imwrite(lp, truth)
    return ip, lp


def test_evaluate_with_huge_ids(tmp_path, model_file, cli, capsys):
    ip, lp = _huge_ids(tmp_path)
    from napari_unet.cli import main

    assert main(["-q", "evaluate", "--model", str(model_file), "--image", str(ip),
                 "--labels", str(lp), "--labels-kind", "instance"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0 <= scores["foreground_iou"] <= 1 and scores["tp"] + scores["fn"] == 4


def test_border_weights_with_huge_ids(tmp_path, cli):
    ip, lp = _huge_ids(tmp_path)
    rc, err = cli("train", "--image", ip, "--labels", lp, "--labels-kind", "instance",
                  "--border-weights", "--out", tmp_path / "m.pt", *TINY)
    assert rc == 0, err


def test_resume_with_an_optimizer_state_of_another_model(image_pair, tmp_path, cli):
    ip, lp = image_pair
    other = tiny_bundle(n_classes=2)
    big = tiny_bundle(n_classes=2)
    big.optimizer_state = {"state": {0: {"step": torch.tensor(3.0),
                                         "exp_avg": torch.zeros(7, 7),
                                         "exp_avg_sq": torch.zeros(7, 7)}},
                           "param_groups": [{"params": list(range(len(
                               list(big.build_model().parameters())))), "lr": 1e-3}]}
    model = tmp_path / "m.pt"
    big.save(model)
    del other
    rc, err = cli("train", "--image", ip, "--labels", lp, "--out", model, "--resume", model,
                  *TINY)
    assert rc == 0, err
    assert load_bundle(model).iterations == 2


def test_one_slice_saved_2d_and_3d_pairs_up(tmp_path, cli):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 1000, (40, 40)).astype(np.uint16)
    ip, lp = tmp_path / "one.tif", tmp_path / "one_annotations.tif"
    tifffile.imwrite(ip, image[None], imagej=True, metadata={"axes": "ZYX"})  # read as 2D
    tifffile.imwrite(lp, sparse_annotations((1, 40, 40)), metadata={"axes": "ZYX"})
    rc, err = cli("train", "--image", ip, "--labels", lp, "--out", tmp_path / "m.pt", *TINY)
    assert rc == 0, err


def _model_with(tmp_path, **changes):
    payload = tiny_bundle().to_dict()
    for key, value in changes.items():
        if key.startswith("norm_"):
            payload["normalisation"][key[5:]] = value
        else:
            payload[key] = value
    path = tmp_path / "odd.pt"
    torch.save(payload, path)
    return path


def _arg(kind, tmp_path, model_file, image):
    """(the arguments, the message expected) for one bad input."""
    out = tmp_path / "out.tif"
    predict = ["predict", "--model", model_file, "--image", image, "--out", out]
    if kind == "nan normalisation":
        return ["predict", "--model", _model_with(tmp_path, norm_low=float("nan")), "--image",
                image, "--out", out], "normalisation"
    if kind == "text normalisation":
        return ["predict", "--model", _model_with(tmp_path, norm_high="lots"), "--image",
                image, "--out", out], "normalisation"
    if kind == "1e30 iterations":
        return ["predict", "--model", _model_with(tmp_path, iterations=1e30), "--image",
                image, "--out", out], "iteration count"
    if kind == "-5 iterations":
        return ["predict", "--model", _model_with(tmp_path, iterations=-5), "--image",
                image, "--out", out], "iteration count"
    if kind == "seed -1":
        return ["train", "--image", image, "--labels", image, "--out", tmp_path / "m.pt",
                "--seed", "-1"], "--seed"
    if kind == "20-digit seed":
        return ["train", "--image", image, "--labels", image, "--out", tmp_path / "m.pt",
                "--seed", "12345678901234567890"], "--seed"
    if kind == "device meta":
        return [*predict, "--device", "meta"], "unknown device 'meta'"
    if kind == "model is a folder":
        (tmp_path / "dir.pt").mkdir()
        return ["predict", "--model", tmp_path / "dir.pt", "--image", image, "--out", out], \
            "is a folder, not a model file"
    if kind == "model is a fifo":
        os.mkfifo(tmp_path / "fifo.pt")
        return ["predict", "--model", tmp_path / "fifo.pt", "--image", image, "--out", out], \
            "is a pipe"
    if kind == "model is /dev/zero":
        return ["predict", "--model", "/dev/zero", "--image", image, "--out", out], \
            "is a device"
    if kind == "empty --out":
        return ["predict", "--model", model_file, "--image", image, "--out", ""], \
            "empty file name"
    if kind == "complex image":
        tifffile.imwrite(tmp_path / "c.tif", np.ones((8, 8), np.complex64))
        return ["predict", "--model", model_file, "--image", tmp_path / "c.tif", "--out", out], \
            "complex"
    if kind == "--channel 99 on one channel":
        return [*predict, "--channel", "99"], "--channel 99 does not exist"
    if kind == "--out x.png":
        return ["predict", "--model", model_file, "--image", image, "--out",
                tmp_path / "x.png"], "must be a TIFF"
    raise AssertionError(kind)


BAD_INPUTS = ["nan normalisation", "text normalisation", "1e30 iterations", "-5 iterations",
              "seed -1", "20-digit seed", "device meta", "model is a folder", "model is a fifo",
              "model is /dev/zero", "empty --out", "complex image",
              "--channel 99 on one channel", "--out x.png"]


@pytest.mark.parametrize("kind", BAD_INPUTS)
def test_odd_inputs_get_one_line(kind, image_pair, model_file, tmp_path, cli):
    args, message = _arg(kind, tmp_path, model_file, image_pair[0])
    assert_refused(cli(*args), message)
    assert not (tmp_path / "out.tif").exists() and not (tmp_path / "m.pt").exists()


def test_the_battery_covers_every_case():
    from . import test_outputs, test_signals, test_tiff_variants

    battery = (test_outputs.SAME_FILE + test_outputs.BAD_OUT + BAD_INPUTS)
    # Cases 1 (outputs = inputs), 3 (special and protected files), 6 (--out checked
    # first), 9 and 10 (one line each); the others have their own tests.
    assert len(battery) >= 30
    assert {"device", "fifo", "fd symlink", "read-only file"} <= set(test_outputs.BAD_OUT)
    assert len({target for _, _, target in test_outputs.SAME_FILE}) >= 6
    for module, name in ((test_signals, "test_a_signal_never_replaces_a_good_model"),
                         (test_signals, "test_a_file_size_limit_during_the_model_save_is_one_line"),
                         (test_tiff_variants, "test_compressed_tiffs_are_read")):
        assert callable(getattr(module, name))


def test_instances_without_probabilities_keep_two_planes_and_agree():
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from tests.conftest import blobs

    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    predictor = Predictor(bundle, device="cpu")
    image = np.random.default_rng(2).normal(100, 30, (96, 96)).astype(np.float32)
    labels = np.zeros(image.shape, np.uint8)
    full, _ = predictor._predict_slice(image[None], labels, keep=True)
    plane, _ = predictor._predict_slice(image[None], labels.copy(), keep=False, relief=True)
    assert plane.shape == (2, 96, 96)
    np.testing.assert_allclose(plane, full[1:], atol=1e-6)
    # The watershed gives the same objects from the two planes as from every class.
    _, objects = blobs(np.random.default_rng(3), shape=(1, 96, 96))
    classes = np.where(objects[0] > 0, 1, 0).astype(np.uint8)
    rng = np.random.default_rng(4)
    probs = rng.dirichlet([0.3, 0.3, 0.3], size=(96, 96)).transpose(2, 0, 1).astype(np.float32)
    one = predictor.instances_2d(probs[1:], classes, min_size=1)
    every = predictor.instances_2d(probs, classes, min_size=1)
    np.testing.assert_array_equal(one, every)
    assert every.max() > 1
