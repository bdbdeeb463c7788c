"""``predict`` of one image block by block: OME-Zarr out, a LocalCluster of 2 worker
processes giving the labels of one process, and outputs checked before any work."""

import os

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.config import START_MODEL
from napari_unet.core.io.lazy import open_image
from tests.conftest import blobs

SMALL = ["--tile-size", "64", "--block-size", "64", "--chunk-size", "32"]
FEWER = ["--tile-size", "64", "--block-size", "128", "--chunk-size", "64"]


@pytest.fixture
def stack(tmp_path):
    """A stack of 2 slices of 150 x 170 with nuclei across the 64-pixel blocks, tiled."""
    image, _ = blobs(np.random.default_rng(7), shape=(2, 150, 170), n=14, radius=9)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, image, tile=(64, 64), imagej=False, metadata={"axes": "ZYX"})
    return path


def _same_partition(a, b):
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]).astype(np.int64), axis=1)
    return len(pairs[0]) == len(np.unique(a)) == len(np.unique(b))


def _predict(*args):
    return main(["-q", "predict", "--model", str(START_MODEL), *map(str, args)])


def test_two_worker_processes_give_the_labels_of_one_process(stack, tmp_path, capsys):
    assert _predict("--image", stack, "--out", tmp_path / "whole.tif", "--instances",
                    "--tile-size", "64") == 0
    assert _predict("--image", stack, "--out", tmp_path / "one.ome.zarr", "--instances",
                    *SMALL) == 0
    rc = main(["predict", "--model", str(START_MODEL), "--image", str(stack), "--out",
               str(tmp_path / "two.ome.zarr"), "--probabilities", str(tmp_path / "p.tif"),
               "--instances", "--workers", "2", *SMALL])
    err = capsys.readouterr().err
    assert rc == 0 and err.splitlines()[-1].startswith("wrote ")
    one = open_image(tmp_path / "one.ome.zarr", lazy=False).data
    two = open_image(tmp_path / "two.ome.zarr", lazy=False).data
    np.testing.assert_array_equal(two, one)
    whole = tifffile.imread(tmp_path / "whole.tif")
    for z in range(2):  # objects identical, ids renumbered, unique over the stack
        assert _same_partition(two[z], whole[z])
    assert int(two.max()) == int(whole[0].max()) + int(whole[1].max())
    assert tifffile.imread(tmp_path / "p.tif").shape == (2, 2, 150, 170)
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["one.ome.zarr", "p.tif", "stack.tif", "two.ome.zarr", "whole.tif"]


def test_ome_zarr_in_tiff_out(stack, tmp_path):
    assert _predict("--image", stack, "--out", tmp_path / "a.ome.zarr", "--probabilities",
                    tmp_path / "p.ome.zarr", *FEWER) == 0
    assert _predict("--image", tmp_path / "p.ome.zarr", "--channel", "1", "--out",
                    tmp_path / "b.tif", *FEWER) == 0
    labels = tifffile.imread(tmp_path / "b.tif")
    assert labels.shape == (2, 150, 170) and labels.dtype == np.uint8 and labels.any()


def test_one_channel_of_a_tiff_read_lazily(stack, tmp_path):
    image = tifffile.imread(stack)[0]
    two = np.stack([image[::-1], image])  # channel 1 is the slice
    tifffile.imwrite(tmp_path / "cyx.tif", two, tile=(64, 64), imagej=False,
                     metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "yx.tif", image)
    assert _predict("--image", tmp_path / "cyx.tif", "--channel", "1", "--out",
                    tmp_path / "a.ome.zarr", *FEWER) == 0
    assert _predict("--image", tmp_path / "yx.tif", "--out", tmp_path / "b.tif",
                    "--tile-size", "64") == 0
    np.testing.assert_array_equal(open_image(tmp_path / "a.ome.zarr", lazy=False).data,
                                  tifffile.imread(tmp_path / "b.tif"))


@pytest.mark.parametrize("case", ["exists", "inside input", "holds input", "is input",
                                  "not zarr", "not an output kind"])
def test_bad_outputs_are_one_line_and_change_nothing(stack, tmp_path, capsys, case):
    existing = tmp_path / "old.ome.zarr"
    tifffile.imwrite(tmp_path / "small.tif", tifffile.imread(stack)[0, :48, :48])
    assert _predict("--image", tmp_path / "small.tif", "--out", existing) == 0
    before = sorted(os.walk(tmp_path))
    image, extra = stack, []
    if case == "exists":
        out = existing
    elif case == "inside input":
        image, out = existing, existing / "labels" / "x.ome.zarr"
    elif case == "holds input":
        out, extra = tmp_path / "box.zarr", ["--overwrite"]
        out.mkdir()
        image = out / "stack.tif"
        image.write_bytes(stack.read_bytes())
        before = sorted(os.walk(tmp_path))
    elif case == "is input":
        image, out, extra = existing, existing, ["--overwrite"]
    elif case == "not zarr":
        out = tmp_path / "folder.zarr"
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        before, extra = sorted(os.walk(tmp_path)), ["--overwrite"]
    else:
        out = tmp_path / "labels.png"
    capsys.readouterr()
    rc = main(["predict", "--model", str(START_MODEL), "--image", str(image), "--out",
               str(out), "--workers", "2", *SMALL, *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("napari-unet: error: ")
    assert {"exists": "exists; give --overwrite", "inside input": "is inside the --image",
            "holds input": "holds the --image", "is input": "is the --image",
            "not zarr": "is not a zarr", "not an output kind": "must be an OME-Zarr"}[
        case] in err
    assert sorted(os.walk(tmp_path)) == before


def test_overwrite_replaces_an_ome_zarr_output(stack, tmp_path):
    out = tmp_path / "l.ome.zarr"
    assert _predict("--image", stack, "--out", out, *FEWER) == 0
    first = open_image(out, lazy=False).data
    assert _predict("--image", stack, "--out", out, "--instances", "--overwrite", *FEWER) == 0
    second = open_image(out, lazy=False).data
    assert first.dtype == np.uint8 and second.dtype == np.uint32 and second.max() > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.ome.zarr", "stack.tif"]


def test_a_damaged_tile_read_by_a_worker_is_one_line(stack, tmp_path, capsys):
    damaged = tmp_path / "damaged.tif"
    tifffile.imwrite(damaged, tifffile.imread(stack), tile=(64, 64), compression="zlib")
    with tifffile.TiffFile(damaged) as tif:
        offset = tif.pages[1].dataoffsets[-1]
    with open(damaged, "r+b") as fh:  # the last tile of the last slice
        fh.seek(offset)
        fh.write(b"\xff" * 32)
    rc = main(["predict", "--model", str(START_MODEL), "--image", str(damaged), "--out",
               str(tmp_path / "l.ome.zarr"), "--workers", "2", *FEWER])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("napari-unet: error: ")]
    assert rc == 2 and len(lines) == 1 and "failed on the cluster" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.tif", "stack.tif"]


def test_which_path_a_prediction_takes(stack, tmp_path, capsys, monkeypatch):
    """An image opened lazily: a TIFF --out is predicted slice by slice, an OME-Zarr
    --out block by block, with the same classes; an OME-Zarr input with a TIFF --out is
    predicted slice by slice too, and TIFF probabilities of such an image are refused
    with the way to write them."""
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "20000")
    assert main(["predict", "--model", str(START_MODEL), "--image", str(stack), "--out",
                 str(tmp_path / "a.tif"), "--tile-size", "64"]) == 0
    assert "read lazily, slice by slice" in capsys.readouterr().err
    assert main(["predict", "--model", str(START_MODEL), "--image", str(stack), "--out",
                 str(tmp_path / "b.ome.zarr"), *FEWER]) == 0
    err = capsys.readouterr().err
    assert "slice by slice" not in err and "shape (2, 150, 170)" in err
    blocks = np.asarray(open_image(tmp_path / "b.ome.zarr", lazy=True).data)
    np.testing.assert_array_equal(blocks, tifffile.imread(tmp_path / "a.tif"))
    assert main(["predict", "--model", str(START_MODEL), "--image",
                 str(tmp_path / "b.ome.zarr"), "--out", str(tmp_path / "c.tif"),
                 "--tile-size", "64"]) == 0
    assert "read lazily, slice by slice" in capsys.readouterr().err
    assert tifffile.imread(tmp_path / "c.tif").shape == (2, 150, 170)
    assert main(["predict", "--model", str(START_MODEL), "--image", str(stack), "--out",
                 str(tmp_path / "d.tif"), "--probabilities", str(tmp_path / "p.tif")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--probabilities PROB.ome.zarr" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.tif", "b.ome.zarr", "c.tif", "stack.tif"]


def test_a_zarr_folder_that_is_not_an_image_is_one_line(tmp_path, capsys):
    """The block path opens its input with open_image: its sentence, nothing written."""
    import zarr

    bad = tmp_path / "plain.zarr"
    zarr.open_group(str(bad), mode="w").create_array("x", shape=(4, 4), dtype="u1")
    before = sorted(os.walk(tmp_path))
    rc = main(["predict", "--model", str(START_MODEL), "--image", str(bad), "--out",
               str(tmp_path / "l.ome.zarr"), *FEWER])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "not an OME-Zarr image" in err
    assert sorted(os.walk(tmp_path)) == before


def test_the_block_path_reads_the_channels_the_model_was_trained_on(tmp_path):
    image, labels = blobs(np.random.default_rng(3), shape=(1, 96, 128), n=6, radius=8)
    noise = np.random.default_rng(4).normal(100, 30, image.shape[1:]).astype(np.float32)
    cyx = np.stack([noise, image[0]])  # the objects are in channel 1 only
    tifffile.imwrite(tmp_path / "cyx.tif", cyx, imagej=False, metadata={"axes": "CYX"})
    tifffile.imwrite(tmp_path / "labels.tif", labels[0])
    model = tmp_path / "ch1.pt"
    assert main(["-q", "train", "--image", str(tmp_path / "cyx.tif"), "--labels",
                 str(tmp_path / "labels.tif"), "--labels-kind", "instance", "--channels", "1",
                 "--out", str(model), "--iterations", "2", "--start-model", "none",
                 "--base-channels", "4", "--depth", "2", "--patch-size", "64",
                 "--batch-size", "2"]) == 0
    common = ["-q", "predict", "--model", str(model), "--image", str(tmp_path / "cyx.tif")]
    assert main([*common, "--out", str(tmp_path / "a.ome.zarr"), "--probabilities",
                 str(tmp_path / "pa.ome.zarr"), *FEWER]) == 0
    assert main([*common, "--out", str(tmp_path / "b.tif"), "--probabilities",
                 str(tmp_path / "pb.tif"), "--tile-size", "64"]) == 0
    assert main([*common, "--channels", "0", "--out", str(tmp_path / "c.ome.zarr"),
                 "--probabilities", str(tmp_path / "pc.ome.zarr"), *FEWER]) == 0
    blocks = open_image(tmp_path / "pa.ome.zarr", lazy=False).data
    np.testing.assert_allclose(blocks, tifffile.imread(tmp_path / "pb.tif"), atol=1e-5)
    np.testing.assert_array_equal(open_image(tmp_path / "a.ome.zarr", lazy=False).data,
                                  tifffile.imread(tmp_path / "b.tif"))
    assert blocks.shape == (3, 96, 128)
    other = open_image(tmp_path / "pc.ome.zarr", lazy=False).data
    assert np.abs(other - blocks).max() > 1e-3  # channel 0 chosen: another input
