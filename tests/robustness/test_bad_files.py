"""Bad files on the command line: one clear line on stderr, exit status 2, nothing written.

Odd but usable images (16-bit, float, NaN and infinity, constant) train and predict.
"""

from __future__ import annotations

import os
import pickle
import warnings

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.core.models.checkpoint import load_bundle

from .conftest import TINY, assert_refused, sparse_annotations, tiny_bundle

RNG = np.random.default_rng(3)


def _not_a_tiff(path):
    path.write_text("these are my notes, not an image")


def _empty(path):
    path.write_bytes(b"")


def _truncated(path):
    tifffile.imwrite(path, RNG.integers(0, 255, (3, 40, 40), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:400])


def _zero_sized(path):
    with warnings.catch_warnings():  # tifffile warns that such a file is nonconformant
        warnings.simplefilter("ignore")
        tifffile.imwrite(path, np.zeros((0, 40, 40), np.uint8))


def _rgb(path):
    tifffile.imwrite(path, RNG.integers(0, 255, (40, 40, 3), dtype=np.uint8), photometric="rgb")


def _rgba(path):
    tifffile.imwrite(path, RNG.integers(0, 255, (40, 40, 4), dtype=np.uint8), photometric="rgb",
                     extrasamples=["unassalpha"])


def _channels(path):
    tifffile.imwrite(path, RNG.integers(0, 255, (3, 2, 40, 40), dtype=np.uint8), imagej=True,
                     metadata={"axes": "ZCYX"})


def _five_d(path):
    tifffile.imwrite(path, RNG.integers(0, 255, (2, 3, 2, 40, 40), dtype=np.uint8),
                     imagej=True, metadata={"axes": "TZCYX"})


def _folder(path):
    path.mkdir()


BAD_IMAGES = [
    (_not_a_tiff, "not a readable TIFF"),
    (_empty, "empty"),
    (_truncated, "truncated|damaged|not a readable TIFF"),
    (_zero_sized, "empty axis"),
    (_rgb, r"RGB image.*model reads one channel.*--channels N \(0 to 2\)"),
    (_rgba, r"RGBA image.*model reads one channel.*--channels N \(0 to 3\)"),
    (_channels, r"2 channels.*model reads one channel.*--channels N \(0 to 1\)"),
    (_five_d, r"dimensions.*2D image or a Z stack"),
    (_folder, "folder"),
]
IDS = [make.__name__.strip("_") for make, _ in BAD_IMAGES]
#: Training takes every channel of an image (RGB and multi-channel images train).
TRAIN_BAD = [(i, case) for i, case in zip(IDS, BAD_IMAGES)
             if case[0] not in (_rgb, _rgba, _channels)]


@pytest.mark.parametrize(("make", "message"), [c for _, c in TRAIN_BAD],
                         ids=[i for i, _ in TRAIN_BAD])
def test_bad_image_for_training(make, message, image_pair, tmp_path, cli):
    _, lp = image_pair
    bad = tmp_path / "bad.tif"
    make(bad)
    out = tmp_path / "m.pt"
    assert_refused(cli("train", "--image", bad, "--labels", lp, "--out", out, *TINY), message)
    assert not out.exists()


@pytest.mark.parametrize(("make", "message"), BAD_IMAGES, ids=IDS)
def test_bad_image_for_prediction(make, message, model_file, tmp_path, cli):
    bad = tmp_path / "bad.tif"
    make(bad)
    out = tmp_path / "labels.tif"
    assert_refused(cli("predict", "--model", model_file, "--image", bad, "--out", out), message)
    assert not out.exists()


@pytest.mark.parametrize(("make", "message"), BAD_IMAGES[:4], ids=IDS[:4])
def test_bad_label_file(make, message, image_pair, tmp_path, cli):
    ip, _ = image_pair
    bad = tmp_path / "bad_labels.tif"
    make(bad)
    assert_refused(cli("train", "--image", ip, "--labels", bad, "--out", tmp_path / "m.pt",
                       *TINY), message)


def test_huge_image_is_read_lazily_or_refused_where_it_must_be_whole(image_pair, model_file,
                                                                     tmp_path, cli,
                                                                     monkeypatch):
    ip, lp = image_pair
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "1000")
    assert_refused(cli("evaluate", "--model", model_file, "--image", ip, "--labels", lp,
                       "--labels-kind", "instance"), r"GiB in memory.*crop it or split it")
    out = tmp_path / "o.tif"
    code, err = cli("predict", "--model", model_file, "--image", ip, "--out", out)
    assert code == 0, err
    assert tifffile.imread(out).shape == tifffile.imread(ip).shape


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (lambda a: a.astype(np.float32) + 0.5, "floats with fractional"),
        (lambda a: np.where(a == 1, np.nan, a.astype(np.float32)), "floats with fractional or NaN"),
        (lambda a: a.astype(np.int16) - 1, "negative values"),
        (lambda a: a[:, :30], "shape .* must match"),
        (lambda a: a[0], "shape .* must match"),
        (lambda a: np.where(a > 0, 2, 0).astype(np.uint8), "only one class"),
        (lambda a: np.zeros_like(a), "nothing is annotated"),
    ],
    ids=["fractional-float", "nan-float", "negative", "other-shape", "2d-for-stack",
         "one-class", "none"],
)
def test_bad_annotations(labels, message, image_pair, tmp_path, cli):
    ip, lp = image_pair
    bad = tmp_path / "bad_labels.tif"
    tifffile.imwrite(bad, labels(tifffile.imread(lp)))
    out = tmp_path / "m.pt"
    assert_refused(cli("train", "--image", ip, "--labels", bad, "--out", out, *TINY), message)
    assert not out.exists()


# ----------------------------------------------------------------- usable oddities
def _float_with_nan_and_inf(image):
    out = image.astype(np.float32)
    out[:, 0, :5] = np.nan
    out[:, 1, :5] = np.inf
    out[:, 2, :5] = -np.inf
    return out


@pytest.mark.parametrize(
    "convert",
    [
        lambda im: im.astype(np.uint16) * 60,  # 16-bit, full range
        lambda im: (im.astype(np.float32) / 3000.0 - 0.2),  # 32-bit float, negative values
        _float_with_nan_and_inf,
        lambda im: np.full(im.shape, 1234, np.uint16),  # constant
        lambda im: (im > 1500).astype(np.uint8),  # binary
    ],
    ids=["uint16", "float32", "nan-inf", "constant", "binary"],
)
def test_odd_images_train_and_predict(convert, image_pair, tmp_path, cli):
    ip, lp = image_pair
    odd = tmp_path / "odd.tif"
    tifffile.imwrite(odd, convert(tifffile.imread(ip)))
    model, out, prob = tmp_path / "m.pt", tmp_path / "pred.tif", tmp_path / "prob.tif"
    rc, err = cli("train", "--image", odd, "--labels", lp, "--out", model, *TINY)
    assert rc == 0, err
    assert load_bundle(model).iterations == 2
    rc, err = cli("predict", "--model", model, "--image", odd, "--out", out,
                  "--probabilities", prob)
    assert rc == 0, err
    labels, probs = tifffile.imread(out), tifffile.imread(prob)
    assert labels.shape == (3, 40, 40) and labels.max() <= 1
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)


def test_labels_stored_as_whole_floats_are_used(image_pair, tmp_path, cli):
    ip, lp = image_pair
    as_float = tmp_path / "float_labels.tif"
    tifffile.imwrite(as_float, tifffile.imread(lp).astype(np.float32))
    rc, err = cli("train", "--image", ip, "--labels", as_float, "--out", tmp_path / "m.pt", *TINY)
    assert rc == 0, err


def test_a_channel_of_an_rgb_image_can_be_chosen(tmp_path, cli):
    rgb = RNG.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    path, labels = tmp_path / "rgb.tif", tmp_path / "rgb_annotations.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    tifffile.imwrite(labels, sparse_annotations((40, 40)))
    model, out = tmp_path / "m.pt", tmp_path / "pred.tif"
    assert cli("train", "--image", path, "--labels", labels, "--channel", "1", "--out", model,
               *TINY)[0] == 0
    assert cli("predict", "--model", model, "--image", path, "--channel", "2", "--out",
               out)[0] == 0
    assert tifffile.imread(out).shape == (40, 40)
    assert_refused(cli("predict", "--model", model, "--image", path, "--channel", "3", "--out",
                       out), r"--channel 3 does not exist.*0 to 2")


def test_annotations_on_a_few_slices_of_a_stack(tmp_path, cli):
    image = RNG.integers(0, 1000, (6, 40, 40)).astype(np.uint16)
    image[:, 20:28, 20:28] += 2000
    ip, lp = tmp_path / "stack.tif", tmp_path / "stack_annotations.tif"
    tifffile.imwrite(ip, image)
    tifffile.imwrite(lp, sparse_annotations(image.shape, slices=[4]))
    model, out = tmp_path / "m.pt", tmp_path / "pred.tif"
    assert cli("train", "--image", ip, "--labels", lp, "--out", model, *TINY)[0] == 0
    assert cli("predict", "--model", model, "--image", ip, "--out", out)[0] == 0
    assert tifffile.imread(out).shape == (6, 40, 40)


# --------------------------------------------------------------------------- models
class _RunsCode:
    marker = None

    def __reduce__(self):
        return (os.system, (f"touch {_RunsCode.marker}",))


def _model_files(tmp_path):
    good = tmp_path / "good.pt"
    tiny_bundle().save(good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "napari-unet model", "payload": _RunsCode()}, evil)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_RunsCode()))
    rgb_model = tmp_path / "rgb_model.pt"
    tiny_bundle(in_channels=3).save(rgb_model)
    return {
        "truncated": (truncated, "truncated|damaged|not a napari-unet model"),
        "newer": (newer, "newer napari-unet.*update"),
        "pickle-that-runs-code": (evil, "refused.*nothing in it was run"),
        "raw-pickle": (raw, "not a napari-unet model"),
        "three-channels": (rgb_model, "3 channels"),
    }


@pytest.mark.parametrize("kind", ["truncated", "newer", "pickle-that-runs-code", "raw-pickle",
                                  "three-channels"])
def test_bad_models_are_refused_without_running_anything(kind, image_pair, tmp_path, cli):
    ip, lp = image_pair
    _RunsCode.marker = tmp_path / "code-ran"
    path, message = _model_files(tmp_path)[kind]
    out = tmp_path / "labels.tif"
    assert_refused(cli("predict", "--model", path, "--image", ip, "--out", out), message)
    assert_refused(cli("train", "--image", ip, "--labels", lp, "--resume", path, "--out",
                       tmp_path / "m.pt", *TINY), message)
    assert_refused(cli("evaluate", "--model", path, "--image", ip, "--labels", lp,
                       "--labels-kind", "semantic"), message)
    assert not _RunsCode.marker.exists()
    assert not out.exists() and not (tmp_path / "m.pt").exists()


def test_a_class_beyond_the_models_classes_grows_the_model(image_pair, tmp_path, cli):
    ip, lp = image_pair
    model = tmp_path / "m.pt"
    tiny_bundle(n_classes=2).save(model)
    more = tmp_path / "more_annotations.tif"
    ann = tifffile.imread(lp)
    ann[:, 30:36, 30:36] = 4  # class 4: the model knows classes 1 and 2
    tifffile.imwrite(more, ann)
    rc, err = cli("train", "--image", ip, "--labels", more, "--resume", model, "--out", model,
                  *TINY)
    assert rc == 0, err
    assert load_bundle(model).n_classes == 4


def test_ground_truth_with_a_class_the_model_lacks(image_pair, model_file, tmp_path, cli):
    ip, lp = image_pair
    truth = tmp_path / "truth.tif"
    tifffile.imwrite(truth, (tifffile.imread(lp) > 0).astype(np.uint8) * 7)
    assert_refused(cli("evaluate", "--model", model_file, "--image", ip, "--labels", truth,
                       "--labels-kind", "semantic"), "class 7")
