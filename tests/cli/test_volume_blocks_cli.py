"""Volumes larger than memory on the command line: a 3D model predicts a z-stack block by
block into a chunked OME-Zarr, with 3D objects (one id per object across the block
faces), the uncertainty, in this process or on a dask cluster.

The volume is a real-looking synthetic z-stack of nuclei (``synthetic_volume``), the
model a tiny 3D U-Net trained a few iterations on its foreground by ``train``; its
foreground threshold is set (``--threshold``) so that its foreground is as large as the
truth's, so that the objects are nucleus-like blobs whatever the few iterations learnt.
Blocks of 8 x 32 x 32 cut the 16 x 64 x 64 volume into 2 x 2 x 2 blocks, through nuclei.
"""

import numpy as np
import pytest
import tifffile

from napari_unet.cli import main
from napari_unet.core.io.lazy import open_image
from napari_unet.core.metrics import match_instances
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.predict.uncertainty import class_entropy
from napari_unet.core.predict.volume import VolumePredictor
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume

VOXEL = (0.5, 0.2, 0.2)
BLOCK = (8, 32, 32)
TINY = ["--base-channels", "4", "--depth", "2", "--batch-size", "1", "--patch-size", "32",
        "--learning-rate", "0.01"]


def _imagej(path, data):
    tifffile.imwrite(path, data, imagej=True, resolution=(1 / VOXEL[2], 1 / VOXEL[1]),
                     metadata={"spacing": VOXEL[0], "unit": "um", "axes": "ZYX"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The volume, its model, the threshold, and the in-memory 3D objects and uncertainty."""
    folder = tmp_path_factory.mktemp("volume-blocks")
    image, labels = nuclei_volume(np.random.default_rng(2), (16, 64, 64),
                                  VolumeStyle(voxel_size=VOXEL, count=10, radius=(1.6, 2.4)))
    paths = {"image": folder / "image.tif", "fg": folder / "fg.tif",
             "model": folder / "m3d.pt"}
    _imagej(paths["image"], image)
    _imagej(paths["fg"], (labels > 0).astype(np.uint8))
    assert main(["-q", "train", "--image", str(paths["image"]), "--labels", str(paths["fg"]),
                 "--labels-kind", "semantic", "--out", str(paths["model"]), "--iterations",
                 "15", "--dims", "3d", "--device", "cpu", *TINY]) == 0
    probs = folder / "p.tif"
    assert main(["-q", "predict", "--model", str(paths["model"]), "--image",
                 str(paths["image"]), "--out", str(folder / "l.tif"), "--probabilities",
                 str(probs), "--device", "cpu"]) == 0
    foreground = 1 - tifffile.imread(probs)[:, 0]
    threshold = float(np.quantile(foreground, 1 - (labels > 0).mean()))
    common = ["--model", str(paths["model"]), "--image", str(paths["image"]), "--device",
              "cpu", "--threshold", f"{threshold:.9f}", "--instances"]
    assert main(["-q", "predict", *common, "--out", str(folder / "objects.tif"),
                 "--uncertainty", str(folder / "u.tif")]) == 0
    objects = tifffile.imread(folder / "objects.tif")
    assert objects.max() >= 4  # several nucleus-like objects to compare
    predictor = VolumePredictor(load_bundle(paths["model"]), device="cpu",
                                foreground_threshold=float(f"{threshold:.9f}"))
    return {"folder": folder, "common": common, "objects": objects, "predictor": predictor,
            "uncertainty": tifffile.imread(folder / "u.tif"), **paths}


def _same_objects(blocks: np.ndarray, memory: np.ndarray) -> None:
    n = int(memory.max())
    assert len(np.unique(blocks[blocks > 0])) == n  # one id per object, as many
    m = match_instances(blocks, memory, threshold=0.9, volume=True)
    assert (m["tp"], m["fp"], m["fn"]) == (n, 0, 0)


def whole_volume_objects(trained, probs: np.ndarray) -> np.ndarray:
    """The 3D objects of the whole volume from ``probs`` (K, Z, Y, X), as ``predict
    --instances`` finds them in memory."""
    from napari_unet.core.config import MIN_OBJECT_SIZE
    from napari_unet.core.predict.volume_instances import volume_instances

    predictor = trained["predictor"]
    return volume_instances(probs, predictor.labels(probs), VOXEL,
                            splits=predictor.splits_instances, min_size=MIN_OBJECT_SIZE)


def _crosses_blocks(objects: np.ndarray) -> int:
    """How many objects lie in more than one block."""
    z, y, x = np.nonzero(objects)
    block = (z // BLOCK[0]) * 4 + (y // BLOCK[1]) * 2 + x // BLOCK[2]
    ids = objects[z, y, x]
    return sum(len(np.unique(block[ids == i])) > 1 for i in np.unique(ids))


def test_3d_objects_block_by_block_are_those_of_the_volume_in_memory(trained):
    import zarr

    folder = trained["folder"]
    out, unc = folder / "objects.ome.zarr", folder / "u.ome.zarr"
    probs = folder / "p.ome.zarr"
    assert main(["-q", "predict", *trained["common"], "--out", str(out), "--uncertainty",
                 str(unc), "--probabilities", str(probs),
                 "--block-size", ",".join(map(str, BLOCK))]) == 0
    memory = trained["objects"]
    assert _crosses_blocks(memory) >= 2  # the blocks cut through objects
    group = zarr.open_group(str(out), mode="r")
    blocks = np.asarray(group["0"])
    assert group["0"].chunks == BLOCK and blocks.dtype == np.uint32
    assert group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0][
        "scale"] == pytest.approx(VOXEL)
    assert "image-label" in group.attrs
    # The objects joined across the block faces are those of the whole volume with the
    # same probabilities (each block's come from its halo of context, which here covers
    # less than the tiny model sees, so they differ a little from one pass near faces)
    p = np.asarray(zarr.open_group(str(probs), mode="r")["0"])
    _same_objects(blocks, whole_volume_objects(trained, p))
    classes = trained["predictor"].labels(p)
    assert (classes == (memory > 0)).mean() > 0.97  # close to the volume in memory
    again = open_image(out)  # a valid OME-Zarr: read back with its voxel size
    assert tuple(again.scale) == pytest.approx(VOXEL) and again.data.shape == memory.shape
    u = zarr.open_group(str(unc), mode="r")
    assert u["0"].chunks == BLOCK and u["0"].dtype == np.float32
    assert u.attrs["multiscales"][0]["axes"][0]["name"] == "z"
    np.testing.assert_allclose(np.asarray(u["0"]), class_entropy(p), atol=1e-6)
    assert np.abs(np.asarray(u["0"]) - trained["uncertainty"]).mean() < 0.02


def test_the_volume_blocks_run_on_a_dask_scheduler(trained, capsys):
    import zarr
    from distributed import LocalCluster

    out = trained["folder"] / "cluster.ome.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        rc = main(["predict", *trained["common"], "--out", str(out), "--block-size",
                   ",".join(map(str, BLOCK)), "--scheduler", cluster.scheduler_address])
    assert rc == 0
    err = capsys.readouterr().err
    assert "block by block" in err and "3D objects, 8 blocks" in err
    here = trained["folder"] / "here.ome.zarr"  # the same blocks in this process
    assert main(["-q", "predict", *trained["common"], "--out", str(here), "--block-size",
                 ",".join(map(str, BLOCK))]) == 0
    _same_objects(np.asarray(zarr.open_group(str(out), mode="r")["0"]),
                  np.asarray(zarr.open_group(str(here), mode="r")["0"]))


def test_bad_volume_block_inputs_are_one_line_and_status_2(trained, tmp_path, capsys,
                                                           monkeypatch):
    from napari_unet.core.predict import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    common = trained["common"]
    taken = tmp_path / "taken.ome.zarr"
    assert main(["-q", "predict", *common, "--out", str(taken)]) == 0
    out = str(tmp_path / "o.ome.zarr")
    cases = [
        (["--out", out, "--scheduler", "tcp://127.0.0.1:1"], "cannot reach the dask scheduler"),
        (["--out", str(taken)], "exists; give --overwrite"),
        (["--out", out, "--block-size", "1,32,32"], "smaller than the model's smallest patch"),
        (["--out", out, "--uncertainty", str(tmp_path / "u.tif")], "as OME-Zarr"),
        (["--out", str(tmp_path / "o.tif"), "--workers", "1", "--uncertainty",
          str(tmp_path / "u.tif")], "as OME-Zarr"),
        (["--out", out, "--probabilities", out], "name the same output"),
    ]
    for extra, words in cases:
        assert main(["predict", *common, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, (extra, err)
    with pytest.raises(SystemExit) as exc:  # not N nor Z,Y,X
        main(["predict", *common, "--out", out, "--block-size", "8,32"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.ome.zarr"]


def test_a_2d_model_stitching_a_volume_refuses_block_outputs(trained, tmp_path, capsys):
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    model2d = tmp_path / "m2d.pt"
    ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2)).save(model2d)
    rc = main(["predict", "--model", str(model2d), "--image", str(trained["image"]), "--out",
               str(tmp_path / "o.ome.zarr"), "--instances", "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "stitched across z in memory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m2d.pt"]
