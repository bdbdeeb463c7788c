"""``napari-unet predict --uncertainty``: a float32 TIFF with the image's pixel size."""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.io.tiff import read_tiff
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.predict.uncertainty import uncertainty
from tests.conftest import blobs


def _write_stack(path, shape=(2, 48, 40)):
    image, _ = blobs(np.random.default_rng(2), shape=shape, n=3, radius=5)
    tifffile.imwrite(path, image.astype(np.uint16), imagej=True, resolution=(1 / 0.5, 1 / 0.5),
                     metadata={"spacing": 2.0, "unit": "um", "axes": "ZYX"})
    return image


def test_uncertainty_tiff_matches_the_probabilities(model, tmp_path):
    from napari_unet.core.models.checkpoint import load_bundle

    image_path = tmp_path / "stack.tif"
    _write_stack(image_path)
    out, unc, prob = tmp_path / "labels.tif", tmp_path / "unc.tif", tmp_path / "prob.tif"
    assert main(["predict", "--model", str(model), "--image", str(image_path), "--out",
                 str(out), "--uncertainty", str(unc), "--probabilities", str(prob),
                 "--device", "cpu"]) == 0
    written = read_tiff(unc)
    assert written.data.dtype == np.float32 and written.data.shape == (2, 48, 40)
    assert written.data.min() >= 0 and written.data.max() <= 1
    np.testing.assert_allclose(written.scale, read_tiff(image_path).scale)
    np.testing.assert_allclose(written.scale[-2:], (0.5, 0.5))
    probs = tifffile.imread(prob)  # (Z, C, Y, X)
    np.testing.assert_allclose(written.data, uncertainty(probs, axis=1), atol=1e-5)
    # The same as the Predictor gives in memory.
    mem = Predictor(load_bundle(model), device="cpu").predict(
        read_tiff(image_path).data, uncertainty=True)
    np.testing.assert_allclose(written.data, mem.uncertainty, atol=1e-5)


def test_uncertainty_of_a_2d_image(model, tmp_path):
    image_path = tmp_path / "plane.tif"
    image, _ = blobs(np.random.default_rng(4), shape=(1, 40, 56), n=2, radius=5)
    tifffile.imwrite(image_path, image[0].astype(np.uint8))
    unc = tmp_path / "u.tif"
    assert main(["predict", "--model", str(model), "--image", str(image_path), "--out",
                 str(tmp_path / "l.tif"), "--uncertainty", str(unc), "--device", "cpu"]) == 0
    assert tifffile.imread(unc).shape == (40, 56)


@pytest.mark.parametrize("where", ["one process", "a scheduler"])
def test_uncertainty_block_by_block_is_that_of_the_image_predicted_whole(model, tmp_path,
                                                                          where):
    import zarr

    image_path = tmp_path / "stack.tif"
    _write_stack(image_path)
    assert main(["-q", "predict", "--model", str(model), "--image", str(image_path), "--out",
                 str(tmp_path / "l.tif"), "--uncertainty", str(tmp_path / "u.tif"),
                 "--device", "cpu"]) == 0
    whole = tifffile.imread(tmp_path / "u.tif")
    unc = tmp_path / "u.ome.zarr"
    # blocks of 16 x 16 pixels: smaller than the 48 x 40 slices, cut through the objects
    argv = ["-q", "predict", "--model", str(model), "--image", str(image_path), "--out",
            str(tmp_path / "l.ome.zarr"), "--uncertainty", str(unc), "--block-size", "16",
            "--chunk-size", "16", "--instances", "--device", "cpu"]
    if where == "a scheduler":
        from distributed import LocalCluster

        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                          dashboard_address=None) as cluster:
            assert main([*argv, "--scheduler", cluster.scheduler_address]) == 0
    else:
        assert main(argv) == 0
    group = zarr.open_group(str(unc), mode="r")
    labels = zarr.open_group(str(tmp_path / "l.ome.zarr"), mode="r")["0"]
    assert group["0"].dtype == np.float32 and group["0"].chunks == labels.chunks == (1, 16, 16)
    assert group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0][
        "scale"] == pytest.approx([2.0, 0.5, 0.5])
    np.testing.assert_allclose(np.asarray(group["0"]), whole, atol=1e-5)
    # a TIFF beside an OME-Zarr of labels: written from the blocks when it fits
    assert main(["-q", "predict", "--model", str(model), "--image", str(image_path), "--out",
                 str(tmp_path / "l2.ome.zarr"), "--uncertainty", str(tmp_path / "u2.tif"),
                 "--block-size", "16", "--chunk-size", "16", "--device", "cpu"]) == 0
    np.testing.assert_allclose(read_tiff(tmp_path / "u2.tif").data, whole, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries


@pytest.mark.parametrize("case", ["input", "same-as-out", "not-tiff", "folder", "zarr"])
def test_bad_uncertainty_outputs_are_refused_in_one_line(model, tmp_path, folder, capsys,
                                                         case):
    image_path = tmp_path / "stack.tif"
    _write_stack(image_path)
    before = image_path.read_bytes()
    out = tmp_path / "labels.tif"
    unc = {"input": image_path, "same-as-out": out, "not-tiff": tmp_path / "u.png",
           "folder": tmp_path / "u.tif", "zarr": tmp_path / "u.png"}[case]
    source = str(folder) if case == "folder" else str(image_path)
    target = {"folder": str(tmp_path / "outs"), "zarr": str(tmp_path / "l.ome.zarr")}.get(
        case, str(out))
    rc = main(["predict", "--model", str(model), "--image", source, "--out", target,
               "--uncertainty", str(unc), "--device", "cpu"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "--uncertainty" in err
    assert image_path.read_bytes() == before
    assert not out.exists() and not (tmp_path / "u.png").exists()
    if case in ("folder", "zarr"):
        assert not (tmp_path / "u.tif").exists()
