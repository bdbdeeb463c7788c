"""train / predict / evaluate of volumes on the command line: a tiny synthetic z-stack
written as an ImageJ TIFF with its voxel size."""

import json

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.io.lazy import open_image
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume, starter_strokes

VOXEL = (0.5, 0.2, 0.2)
TINY = ["--base-channels", "4", "--depth", "2", "--batch-size", "2", "--patch-size", "32"]


def _imagej(path, data, voxel=VOXEL):
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / voxel[2], 1 / voxel[1]),
                     metadata={"spacing": voxel[0], "unit": "um", "axes": "ZYX"})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    folder = tmp_path_factory.mktemp("volumes")
    image, labels = nuclei_volume(np.random.default_rng(2), (16, 48, 48),
                                  VolumeStyle(voxel_size=VOXEL, count=6, radius=(1.6, 2.4)))
    strokes = starter_strokes(np.random.default_rng(0), labels)
    paths = {name: folder / f"{name}.tif" for name in ("image", "labels", "strokes")}
    _imagej(paths["image"], image)
    _imagej(paths["labels"], labels.astype(np.uint16))
    _imagej(paths["strokes"], strokes)
    return folder, paths


@pytest.fixture(scope="module")
def model3d(stack):
    folder, paths = stack
    out = folder / "m3d.pt"
    assert main(["-q", "train", "--image", str(paths["image"]), "--labels",
                 str(paths["labels"]), "--labels-kind", "instance", "--out", str(out),
                 "--iterations", "3", "--dims", "3d", "--device", "cpu", *TINY]) == 0
    return out


def test_train_3d_records_the_voxel_size_and_auto_says_what_it_chose(stack, model3d,
                                                                     capsys):
    bundle = load_bundle(model3d)
    assert bundle.dims == 3 and bundle.n_classes == 3
    assert bundle.voxel_size == pytest.approx(VOXEL)
    assert bundle.config.pools == ((1, 2, 2), (2, 2, 2))
    folder, paths = stack
    out = folder / "strokes.pt"
    assert main(["train", "--image", str(paths["image"]), "--labels", str(paths["strokes"]),
                 "--out", str(out), "--iterations", "2", "--device", "cpu", "--dims", "3d",
                 "--voxel-size", "1,0.2,0.2", *TINY]) == 0
    assert "3D model: --dims 3d" in capsys.readouterr().err
    assert load_bundle(out).voxel_size == (1.0, 0.2, 0.2)  # --voxel-size wins
    auto = folder / "auto.pt"
    assert main(["train", "--image", str(paths["image"]), "--labels", str(paths["strokes"]),
                 "--out", str(auto), "--iterations", "1", "--device", "cpu",
                 "--start-model", "none", *TINY]) == 0
    err = capsys.readouterr().err
    from napari_unet.core.config import VOLUME_MODEL

    assert f"{VOLUME_MODEL[0]}D model: 16 slices that overlap" in err
    assert load_bundle(auto).dims == int(VOLUME_MODEL[0])


def test_train_2d_on_request(stack, capsys):
    folder, paths = stack
    out = folder / "m2d.pt"
    assert main(["train", "--image", str(paths["image"]), "--labels", str(paths["labels"]),
                 "--labels-kind", "instance", "--out", str(out), "--iterations", "2",
                 "--dims", "2d", "--device", "cpu", *TINY]) == 0
    assert "2D model: --dims 2d" in capsys.readouterr().err
    assert load_bundle(out).dims == 2


def test_predict_and_evaluate_a_volume_with_3d_objects(stack, model3d, capsys):
    folder, paths = stack
    out = folder / "objects.tif"
    assert main(["predict", "--model", str(model3d), "--image", str(paths["image"]),
                 "--out", str(out), "--instances", "--device", "cpu"]) == 0
    assert "3D: the model is a 3D model" in capsys.readouterr().err
    written = open_image(out)
    assert written.data.shape == (16, 48, 48)
    assert written.scale == pytest.approx(VOXEL)  # the output keeps the voxel size
    assert main(["evaluate", "--model", str(model3d), "--image", str(paths["image"]),
                 "--labels", str(paths["labels"]), "--labels-kind", "instance",
                 "--device", "cpu"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["dims"] == "3d" and scores["objects"] == "3d"
    assert 0 <= scores["foreground_iou"] <= 1 and 0 <= scores["f1_50"] <= 1
    assert main(["evaluate", "--model", str(model3d), "--image", str(paths["image"]),
                 "--labels", str(paths["labels"]), "--labels-kind", "instance",
                 "--per-slice", "--device", "cpu"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == "per slice"


def test_a_volume_of_other_voxels_says_how_it_is_zoomed(stack, model3d, capsys):
    folder, paths = stack
    out = folder / "coarse_objects.tif"
    # The same volume declared at twice the model's voxel size along y and x.
    assert main(["predict", "--model", str(model3d), "--image", str(paths["image"]),
                 "--voxel-size", "0.5,0.4,0.4", "--out", str(out), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert ("zoomed to the model's voxel size (0.5 x 0.2 x 0.2 µm): (16, 48, 48) -> "
            "(16, 96, 96) voxels (4x as many); --rescale off") in err
    assert open_image(out).data.shape == (16, 48, 48)  # back at the volume's own voxels
    assert main(["predict", "--model", str(model3d), "--image", str(paths["image"]),
                 "--voxel-size", "0.5,0.4,0.4", "--rescale", "off", "--out",
                 str(folder / "as_is.tif"), "--device", "cpu"]) == 0
    assert "zoomed" not in capsys.readouterr().err


def test_a_2d_model_stitches_the_objects_of_a_volume(stack, capsys):
    folder, paths = stack
    model = folder / "m2d_stitch.pt"
    assert main(["-q", "train", "--image", str(paths["image"]), "--labels",
                 str(paths["labels"]), "--labels-kind", "instance", "--out", str(model),
                 "--iterations", "2", "--dims", "2d", "--device", "cpu", *TINY]) == 0
    out = folder / "stitched.tif"
    assert main(["predict", "--model", str(model), "--image", str(paths["image"]),
                 "--out", str(out), "--instances", "--device", "cpu"]) == 0
    assert "2D + stitching" in capsys.readouterr().err
    assert tifffile.imread(out).shape == (16, 48, 48)


def test_predict_a_volume_block_by_block_into_ome_zarr(stack, model3d):
    import zarr

    folder, paths = stack
    out = folder / "labels.ome.zarr"
    assert main(["-q", "predict", "--model", str(model3d), "--image", str(paths["image"]),
                 "--out", str(out), "--device", "cpu"]) == 0
    group = zarr.open_group(str(out), mode="r")
    assert group["0"].shape == (16, 48, 48)


@pytest.mark.parametrize("value", ["0,1,1", "nan,1,1", "-1,0.2,0.2", "1,1", "a,b,c"])
def test_a_bad_voxel_size_is_one_line_and_status_2(stack, tmp_path, capsys, value):
    _, paths = stack
    with pytest.raises(SystemExit) as exc:
        main(["train", "--image", str(paths["image"]), "--labels", str(paths["labels"]),
              "--out", str(tmp_path / "m.pt"), f"--voxel-size={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--voxel-size" in err


def test_volume_errors_are_one_line_and_status_2(stack, model3d, tmp_path, capsys):
    folder, paths = stack
    flat = tmp_path / "flat.tif"
    tifffile.imwrite(flat, np.zeros((48, 48), np.uint16))
    thin = tmp_path / "thin.tif"
    _imagej(thin, np.random.default_rng(0).integers(0, 9, (3, 48, 48)).astype(np.uint16))
    deep = tmp_path / "deep.pt"  # pools z twice: its smallest patch is 4 slices deep
    ModelBundle.new(UNetConfig(1, 2, 4, 3, dims=3, pools=((1, 2, 2), (2, 2, 2), (2, 2, 2))),
                    voxel_size=VOXEL).save(deep)
    cases = [
        (["predict", "--model", str(model3d), "--image", str(flat), "--out",
          str(tmp_path / "o.tif")], "image is 2D"),
        (["predict", "--model", str(deep), "--image", str(thin), "--out",
          str(tmp_path / "o.tif")], "fewer than"),
        (["train", "--image", str(flat), "--labels", str(flat), "--out",
          str(tmp_path / "m.pt"), "--dims", "3d"], "needs a volume"),
        (["predict", "--model", str(model3d), "--image", str(paths["image"]), "--out",
          str(tmp_path / "o.tif"), "--dims", "2d"], "3D model"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "o.tif").exists()


def test_a_3d_model_exports_to_bioimageio_and_passes_its_test(model3d, tmp_path):
    bioimageio_core = pytest.importorskip("bioimageio.core")
    import zipfile

    import yaml

    out = tmp_path / "m3d.zip"
    assert main(["-q", "export", "--model", str(model3d), "--out", str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    axes = rdf["inputs"][0]["axes"]
    assert [a.get("id", a["type"]) for a in axes] == ["batch", "channel", "z", "y", "x"]
    assert [a["description"] for a in axes[2:]] == [f"{v:g} um per voxel" for v in VOXEL]
    assert rdf["config"]["napari_unet"]["voxel_size"] == pytest.approx(list(VOXEL))
    summary = bioimageio_core.test_model(out)
    assert summary.status == "passed", summary.format()
    from napari_unet.core.share.package import load_package

    back = load_package(out)
    assert back.dims == 3 and back.voxel_size == pytest.approx(VOXEL)
