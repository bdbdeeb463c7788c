"""Folder prediction (``--image FOLDER --out FOLDER``) against careless use: predicting a
folder into itself twice, an output replaced by garbage, a read-only output folder."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import tifffile

from napari_unet.core.errors import InputError
from napari_unet.core.predict.files import Job, check_folder, complete_output, plan_jobs

from .conftest import assert_refused
from .hostile import cli, snapshot, temporaries


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for name in ("a01", "a02"):
        tifffile.imwrite(images / f"{name}.tif", rng.integers(0, 255, (40, 40), dtype=np.uint8))
    return images


def test_a_folder_predicted_into_itself_runs_again(folder, model_file):
    images = snapshot(folder)
    rc, err = cli("predict", "--image", folder, "--model", model_file, "--out", folder)
    assert rc == 0, err
    assert {p.name for p in folder.iterdir()} == {
        "a01.tif", "a02.tif", "a01_labels.tif", "a02_labels.tif"}
    rc, err = cli("predict", "--image", folder, "--model", model_file, "--out", folder)
    assert rc == 0, err
    assert err.count("skipped, its outputs are up to date") == 2, err
    assert "a01_labels.tif: skipped" not in err  # an output is never an input
    rc, err = cli("predict", "--image", f"{folder}/*.tif", "--model", model_file,
                  "--out", folder, "--redo")
    assert rc == 0, err
    assert "2 predicted, 0 skipped, 0 failed" in err, err
    assert all(snapshot(folder)[name] == data for name, data in images.items())
    assert not temporaries(folder)


def test_a_users_labels_file_is_never_replaced(folder, model_file):
    """A file named like an output but not written by a prediction stays an input."""
    tifffile.imwrite(folder / "a01_labels.tif", np.ones((40, 40), np.uint8))
    before = snapshot(folder)
    result = cli("predict", "--image", folder, "--model", model_file, "--out", folder)
    assert_refused(result, r"a01_labels\.tif of a01\.tif is also an input, and not a "
                           "prediction of napari-unet")
    assert snapshot(folder) == before


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape"])
def test_a_damaged_output_is_predicted_again(damage, folder, model_file, tmp_path):
    out = tmp_path / "out"
    rc, err = cli("predict", "--image", folder, "--model", model_file, "--out", out)
    assert rc == 0, err
    output = out / "a01_labels.tif"
    time.sleep(0.01)
    if damage == "garbage":
        output.write_bytes(os.urandom(2000))
    elif damage == "truncated":
        output.write_bytes(output.read_bytes()[:200])
    else:
        tifffile.imwrite(output, np.zeros((20, 40), np.uint8))
    assert not complete_output(output, folder / "a01.tif", probabilities=False)
    rc, err = cli("predict", "--image", folder, "--model", model_file, "--out", out)
    assert rc == 0, err
    assert "a02.tif: skipped" in err and "a01.tif: skipped" not in err, err
    assert tifffile.imread(output).shape == (40, 40)


def test_a_complete_output_counts_as_done(folder, tmp_path):
    output = tmp_path / "a01_labels.tif"
    tifffile.imwrite(output, np.zeros((40, 40), np.uint8))
    assert complete_output(output, folder / "a01.tif", probabilities=False)
    probabilities = tmp_path / "a01_probabilities.tif"
    tifffile.imwrite(probabilities, np.zeros((2, 40, 40), np.float32))
    assert complete_output(probabilities, folder / "a01.tif", probabilities=True)


def test_a_read_only_output_folder_is_named_as_given(folder, model_file, tmp_path):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = cli("predict", "--image", folder, "--model", model_file, "--out", out)
        assert_refused(result, rf"--out {out} is write-protected; choose a folder")
        assert "labels.tif" not in result[1] and "probe" not in result[1]
        with pytest.raises(InputError, match=r"inside cannot be created: .*locked is write"):
            check_folder(out / "inside")
    finally:
        out.chmod(0o755)


def test_plan_leaves_out_only_marked_outputs_of_known_images(folder):
    from napari_unet.core.io.tiff import write_tiff

    write_tiff(folder / "a01_labels.tif", np.zeros((40, 40), np.uint8), labels=True,
               mark={"napari_unet_output": "labels"})
    write_tiff(folder / "zz_labels.tif", np.zeros((40, 40), np.uint8), labels=True,
               mark={"napari_unet_output": "labels"})  # no zz.tif: a user's image
    images = sorted(folder.glob("*.tif"))
    jobs = plan_jobs(images, folder)
    assert [j.image.name for j in jobs] == ["a01.tif", "a02.tif", "zz_labels.tif"]
    assert jobs[0] == Job(folder / "a01.tif", folder / "a01_labels.tif")
