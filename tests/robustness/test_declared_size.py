"""Inputs whose declared size cannot fit the run: refused at once with the numbers; what
is truly large and present keeps its lazy route. The files are huge only in what they
declare (a sparse file, compressed zero tiles)."""

from __future__ import annotations

import pytest

from napari_unet.core.errors import InputError, failure_message
from napari_unet.core.predict.plan import PredictOptions, Route, plan_prediction

from .conftest import assert_refused, tiny_bundle
from .hostile import cli, sparse_strip_tiff, temporaries, tiled_zero_tiff

#: Sides large enough that no test machine holds what they declare (about 150 GB of
#: pixels in one strip, 400 GB of work for one plane) and small on disk.
STRIP_SIDE = 400_000
TILED_SIDE = 150_000


@pytest.fixture(scope="module")
def strip(tmp_path_factory):
    return sparse_strip_tiff(tmp_path_factory.mktemp("strip") / "strip.tif", STRIP_SIDE)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    return tiled_zero_tiff(tmp_path_factory.mktemp("tiled") / "tiled.tif", TILED_SIDE)


@pytest.mark.parametrize("out", ["out.tif", "out.ome.zarr"])
def test_a_single_strip_too_large_to_read_is_refused(out, strip, tmp_path, model_file):
    result = cli("predict", "--image", strip, "--model", model_file, "--out", tmp_path / out)
    assert_refused(result, r"strip\.tif: reading any part of it \(it stores its "
                           r"400000x400000 planes as one strip, read whole\) needs about "
                           r"[0-9.]+ GiB, and [0-9.]+ GiB are available; .*save it tiled")
    assert "batch or patch" not in result[1]
    assert not (tmp_path / out).exists() and not temporaries(tmp_path)


def test_a_tiled_plane_with_a_tiff_output_is_refused_with_numbers(tiled, tmp_path,
                                                                  model_file):
    result = cli("predict", "--image", tiled, "--model", model_file,
                 "--out", tmp_path / "out.tif")
    assert_refused(result, r"tiled\.tif: predicting one 150000x150000 plane at a time needs "
                           r"about [0-9.]+ GiB, and [0-9.]+ GiB are available; write an "
                           r"OME-Zarr")
    assert not temporaries(tmp_path)


def test_a_tiled_plane_into_an_ome_zarr_takes_the_block_route(tiled, tmp_path):
    plan = plan_prediction(tiny_bundle(), [tiled], out=tmp_path / "out.ome.zarr")
    assert plan.route is Route.BLOCKS
    assert tuple(plan.image.data.shape) == (TILED_SIDE, TILED_SIDE)


def test_a_tiff_output_built_from_blocks_must_fit(tiled, tmp_path):
    with pytest.raises(InputError, match=r"as a TIFF|would need .* GiB in memory"):
        plan_prediction(tiny_bundle(), [tiled], out=tmp_path / "out.tif",
                        options=PredictOptions(workers=1))


def test_out_of_memory_of_an_array_says_its_size_not_the_batch():
    import numpy as np

    with pytest.raises(MemoryError) as caught:
        np.empty((10**7, 10**7), np.float32)  # 364 TiB: no computer gives it
    message = failure_message(caught.value, "Prediction")
    assert "batch or patch" not in message
    assert "363.8 TiB (an array of 10000000x10000000 float32)" in message, message
