import subprocess
import sys

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.models.checkpoint import load_bundle
from tests.conftest import blobs


@pytest.fixture
def pair(tmp_path):
    image, labels = blobs(np.random.default_rng(1), shape=(3, 64, 64))
    ip, lp = tmp_path / "img.tif", tmp_path / "lab.tif"
    tifffile.imwrite(ip, image.astype(np.uint16))
    tifffile.imwrite(lp, labels)
    return ip, lp


TINY = ["--base-channels", "4", "--depth", "2", "--batch-size", "2", "--patch-size", "32"]


def test_train_then_predict(pair, tmp_path, capsys):
    ip, lp = pair
    model = tmp_path / "m.pt"
    rc = main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "instance",
               "--out", str(model), "--iterations", "4", "--seed", "1", *TINY])
    assert rc == 0 and model.exists()
    bundle = load_bundle(model)
    assert bundle.iterations == 4 and bundle.label_kind == "instance" and bundle.n_classes == 3
    err = capsys.readouterr().err
    assert "it 4" in err and "saved" in err
    assert bundle.object_size is not None  # the size of its images' objects, recorded
    assert f"objects about {bundle.object_size:.0f} px across" in err
    out, prob = tmp_path / "pred.tif", tmp_path / "prob.tif"
    assert main(["predict", "--model", str(model), "--image", str(ip), "--out", str(out),
                 "--probabilities", str(prob)]) == 0
    labels = tifffile.imread(out)
    assert labels.shape == (3, 64, 64) and labels.max() <= 2
    assert tifffile.imread(prob).shape == (3, 3, 64, 64)
    assert main(["predict", "--model", str(model), "--image", str(ip), "--out", str(out),
                 "--instances"]) == 0
    # resume continues the iteration count
    assert main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "instance",
                 "--out", str(model), "--iterations", "2", "--resume", str(model), *TINY]) == 0
    assert load_bundle(model).iterations == 6


def test_border_and_edge_weights_reach_the_training_record(pair, tmp_path):
    ip, lp = pair
    runs = {}
    for name, extra in (("plain", []), ("weighted", ["--border-weights", "--edge-weight", "2"])):
        model = tmp_path / f"{name}.pt"
        assert main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind",
                     "instance", "--out", str(model), "--iterations", "2", *extra, *TINY]) == 0
        runs[name] = load_bundle(model).history[-1]
    assert runs["plain"]["pixel_weights"] is False and runs["plain"]["edge_weight"] == 0
    assert runs["weighted"]["pixel_weights"] is True and runs["weighted"]["edge_weight"] == 2


def test_new_models_start_from_the_nuclei_model_when_asked(pair, tmp_path, capsys):
    from napari_unet.core.config import START_MODEL
    from napari_unet.core.models.checkpoint import load_bundle as load

    ip, lp = pair
    shipped = load(START_MODEL)
    model = tmp_path / "inst.pt"
    assert main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "instance",
                 "--out", str(model), "--iterations", "2", "--start-model", "nuclei",
                 "--batch-size", "2", "--patch-size", "32"]) == 0
    bundle = load(model)
    assert bundle.label_kind == "instance" and bundle.n_classes == 3
    assert bundle.class_names == ["background", "nucleus", "boundary"]
    assert bundle.config.base_channels == shipped.config.base_channels
    assert bundle.iterations == shipped.iterations + 2
    # the start model fixes the architecture
    rc = main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "instance",
               "--out", str(tmp_path / "x.pt"), "--iterations", "2", "--start-model", "nuclei",
               "--base-channels", "8"])
    assert rc == 2 and "fixes the architecture" in capsys.readouterr().err
    # dense labels start from random weights unless asked
    assert main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "semantic",
                 "--out", str(tmp_path / "s.pt"), "--iterations", "1", "--batch-size", "2",
                 "--patch-size", "32"]) == 0
    assert load(tmp_path / "s.pt").iterations == 1


def test_several_pairs(pair, tmp_path):
    ip, lp = pair
    small = tmp_path / "small.tif"
    small_lab = tmp_path / "small_lab.tif"
    tifffile.imwrite(small, tifffile.imread(ip)[0, :40, :50])
    tifffile.imwrite(small_lab, tifffile.imread(lp)[0, :40, :50])
    rc = main(["train", "--image", str(ip), "--labels", str(lp), "--image", str(small),
               "--labels", str(small_lab), "--labels-kind", "semantic", "--out",
               str(tmp_path / "m.pt"), "--iterations", "2", *TINY])
    assert rc == 0


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(t / "missing.tif"),
                            "--out", str(t / "m.pt")], "does not exist"),
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(lp), "--labels",
                            str(lp), "--out", str(t / "m.pt")], "one labels file per image"),
        (lambda ip, lp, t: ["predict", "--model", str(ip), "--image", str(ip), "--out",
                            str(t / "o.tif")], "not a napari-unet model"),
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(lp), "--out",
                            str(t / "m.pt"), "--iterations", "0"], "at least 1"),
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(lp), "--out",
                            str(t / "m.pt"), "--edge-weight", "-1"], "0 or more"),
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(lp), "--out",
                            str(t / "m.pt"), "--zoom", "0.5"], "--zoom.*between 1 and 8"),
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(lp), "--out",
                            str(t / "m.pt"), "--intensity", "1.5"],
         "--intensity.*between 0 and 0.9"),
        (lambda ip, lp, t: ["train", "--image", str(ip), "--labels", str(lp), "--out",
                            str(t / "m.pt"), "--device", "cuda"] if not _cuda() else
         ["predict"], "cuda|required"),
    ],
)
def test_errors_are_one_line_and_exit_2(pair, tmp_path, capsys, make_args, message):
    ip, lp = pair
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(make_args(ip, lp, tmp_path)))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("napari-unet: error:")
    assert __import__("re").search(message, err)


def test_annotation_kind_with_nothing_annotated(pair, tmp_path, capsys):
    ip, lp = pair
    blank = tmp_path / "blank.tif"
    tifffile.imwrite(blank, np.zeros((3, 64, 64), np.uint8))
    rc = main(["train", "--image", str(ip), "--labels", str(blank), "--out",
               str(tmp_path / "m.pt")])
    assert rc == 2 and "nothing is annotated" in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()


def test_console_script_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "napari_unet.cli", "predict", "--model", str(tmp_path / "x.pt"),
         "--image", str(tmp_path / "x.tif"), "--out", str(tmp_path / "o.tif")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def _cuda():
    import torch

    return torch.cuda.is_available()


def test_evaluate_prints_one_json_object(pair, tmp_path, capsys):
    import json

    ip, lp = pair
    model = tmp_path / "m.pt"
    assert main(["train", "--image", str(ip), "--labels", str(lp), "--labels-kind", "instance",
                 "--out", str(model), "--iterations", "2", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--model", str(model), "--image", str(ip), "--labels", str(lp),
                 "--labels-kind", "instance"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    scores = json.loads(out[0])
    assert {"foreground_iou", "f1_50", "ap_50", "pixel_error", "rand_error"} <= set(scores)
    assert 0 <= scores["foreground_iou"] <= 1
    semantic = tmp_path / "sem.tif"
    tifffile.imwrite(semantic, (tifffile.imread(lp) > 0).astype(np.uint8) * 5)
    assert main(["evaluate", "--model", str(model), "--image", str(ip), "--labels",
                 str(semantic), "--labels-kind", "semantic"]) == 2


def test_predict_threshold_is_on_the_foreground_probability(pair, tmp_path, capsys):
    """An instance model with p(background) 0.4 everywhere, most likely but below half."""
    from tests.conftest import constant_bundle

    ip, _ = pair
    model, out = tmp_path / "const.pt", tmp_path / "pred.tif"
    constant_bundle([0.4, 0.35, 0.25]).save(model)
    base = ["predict", "--model", str(model), "--image", str(ip), "--out", str(out)]
    assert main([*base, "--instances"]) == 0
    assert (tifffile.imread(out) == 0).all()  # foreground, but no pixel sure to be interior
    sure = tmp_path / "sure.pt"
    constant_bundle([0.04, 0.9, 0.06]).save(sure)
    assert main(["predict", "--model", str(sure), "--image", str(ip), "--out", str(out),
                 "--instances"]) == 0
    assert (tifffile.imread(out) == 1).all()  # one object covering the foreground
    assert main(base) == 0
    assert (tifffile.imread(out) == 1).all()  # foreground, of the likelier foreground class
    assert main([*base, "--threshold", "0.7"]) == 0
    assert (tifffile.imread(out) == 0).all()
    capsys.readouterr()
    for bad in ("0", "1", "1.5", "nan"):
        with pytest.raises(SystemExit) as exc:
            main([*base, "--threshold", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--threshold" in err



def test_predict_shrinks_an_image_of_large_objects_and_says_so(tmp_path, cli, capsys,
                                                               monkeypatch):
    """A model that knows objects 8 pixels across predicts an image of objects 32 across
    shrunk (the labels keep the image's size, the command says so in one line);
    ``--rescale off`` at full size; a bad setting, or a factor where the image is
    predicted block by block, is one line and status 2."""
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig
    from tests.core.test_scale import discs

    model, image, out = tmp_path / "m.pt", tmp_path / "big.tif", tmp_path / "labels.tif"
    bundle = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance")
    bundle.object_size = 8.0
    bundle.save(model)
    tifffile.imwrite(image, (discs(16, shape=(160, 200)) * 1000 + 500).astype(np.uint16))
    base = ["predict", "--model", str(model), "--image", str(image), "--out", str(out)]

    def loud(*extra) -> tuple[int, str]:
        capsys.readouterr()
        rc = main([*base, *extra])
        return rc, capsys.readouterr().err

    rc, err = loud()
    note = [line for line in err.splitlines() if "resized" in line]
    assert rc == 0 and len(note) == 1 and "look larger than those the model" in note[0]
    factor = float(note[0].split("resized by ")[1].split()[0])
    assert 0.1 < factor < 0.6  # objects 32 pixels across against 8
    assert tifffile.imread(out).shape == (160, 200)
    whole = tifffile.imread(out)
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "10000")  # read lazily, slice by slice
    rc, err = loud()
    assert rc == 0 and "read lazily" in err and f"resized by {factor:g}" in err, err
    np.testing.assert_array_equal(tifffile.imread(out), whole)
    monkeypatch.delenv("NAPARI_UNET_MAX_IMAGE_BYTES")
    rc, err = loud("--rescale", "off")
    assert rc == 0 and "resized" not in err
    rc, err = loud("--rescale", "0.5")
    assert rc == 0 and "resized by 0.5 (--rescale)" in err
    assert tifffile.imread(out).shape == (160, 200)
    for bad in ("big", "0", "3"):
        rc, err = cli(*base, "--rescale", bad)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "--rescale" in err
    rc, err = cli(*base[:-1], tmp_path / "labels.ome.zarr", "--rescale", "0.5")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "block by block" in err
    assert not (tmp_path / "labels.ome.zarr").exists()
