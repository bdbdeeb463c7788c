"""The planner of a prediction run: which route for which inputs, outputs and options,
and what it refuses before any work."""

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_unet.core.errors import InputError
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.plan import PredictOptions, Route, plan_prediction
from napari_unet.core.predict.run import run_blocks, run_files, run_in_memory
from napari_unet.core.predict.tiles import Predictor


@pytest.fixture
def bundle():
    return ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2), "semantic")


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tifffile.imwrite(folder / f"{name}.tif", rng.integers(0, 255, (48, 40), np.uint8))
    return folder


def no_model():
    raise AssertionError("the model was loaded before the outputs were checked")


def test_several_files_a_folder_or_a_pattern_are_predicted_file_by_file(bundle, images,
                                                                         tmp_path):
    out = tmp_path / "out"
    for inputs in ([images / "a.tif", images / "b.tif"], [images], [images / "*.tif"]):
        plan = plan_prediction(bundle, inputs, out=out)
        assert plan.route is Route.FILES and not plan.cluster
        assert [job.image.name for job in plan.todo] == ["a.tif", "b.tif"]
        assert plan.todo == plan.jobs
        assert plan.jobs[0].labels == out / "a_labels.tif"
    clustered = plan_prediction(bundle, [images], out=out, options=PredictOptions(workers=2))
    assert clustered.route is Route.FILES and clustered.cluster


def test_files_whose_outputs_are_newer_than_image_and_model_are_left_out(bundle, images,
                                                                          tmp_path):
    model = tmp_path / "m.pt"
    bundle.save(model)
    out = tmp_path / "out"
    plan = plan_prediction(bundle, [images], out=out, model_path=model)
    results = run_files(plan, lambda: Predictor(bundle, device="cpu"), tifffile_reader)
    assert [r.failed for r in results] == [False, False]
    again = plan_prediction(bundle, [images], out=out, model_path=model)
    assert len(again.jobs) == 2 and again.todo == ()
    redo = plan_prediction(bundle, [images], out=out, model_path=model,
                           options=PredictOptions(redo=True))
    assert redo.todo == redo.jobs


class _Read:
    def __call__(self, path):
        from napari_unet.core.io.lazy import open_image
        from napari_unet.core.io.selection import select_for_model

        return select_for_model(open_image(path, lazy=False), None, "--channels", None)


tifffile_reader = _Read()


def test_one_image_into_tiff_is_predicted_whole_in_memory(bundle, images, tmp_path):
    plan = plan_prediction(bundle, [images / "a.tif"], out=tmp_path / "a.tif",
                           probabilities=tmp_path / "p.tif")
    assert plan.route is Route.MEMORY and isinstance(plan.image.data, np.ndarray)
    written = run_in_memory(plan, Predictor(bundle, device="cpu"))
    assert written.shape == (48, 40) and written.slices == 1
    assert tifffile.imread(tmp_path / "a.tif").shape == (48, 40)
    assert tifffile.imread(tmp_path / "p.tif").shape == (2, 48, 40)


def test_an_ome_zarr_output_or_a_cluster_goes_block_by_block(bundle, images, tmp_path):
    image = images / "a.tif"
    plan = plan_prediction(bundle, [image], out=tmp_path / "a.ome.zarr")
    assert plan.route is Route.BLOCKS and not plan.cluster
    assert tuple(plan.image.data.shape) == (48, 40)
    written = run_blocks(plan, Predictor(bundle, device="cpu"))
    assert (tmp_path / "a.ome.zarr").is_dir() and written.shape == (48, 40)
    on_cluster = plan_prediction(bundle, [image], out=tmp_path / "b.tif",
                                 options=PredictOptions(workers=1))
    assert on_cluster.route is Route.BLOCKS and on_cluster.cluster


def test_an_image_too_large_for_memory_goes_slice_by_slice(bundle, tmp_path, monkeypatch):
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((3, 64, 64), np.uint16))
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "1000")  # the stack does not fit
    plan = plan_prediction(bundle, [stack], out=tmp_path / "labels.tif")
    assert plan.route is Route.SLICES and not isinstance(plan.image.data, np.ndarray)
    with pytest.raises(InputError, match="too large to hold in memory: --probabilities"):
        plan_prediction(bundle, [stack], out=tmp_path / "labels.tif",
                        probabilities=tmp_path / "p.tif")


def test_arrays_from_layers_go_whole_or_slice_by_slice_when_lazy(bundle):
    held = plan_prediction(bundle, [np.zeros((2, 32, 32), np.float32)],
                           options=PredictOptions(probabilities=True))
    assert held.route is Route.MEMORY and held.keeps_probabilities
    lazy = plan_prediction(bundle, [da.zeros((2, 32, 32), chunks=(1, 32, 32))],
                           options=PredictOptions(probabilities=True))
    assert lazy.route is Route.SLICES
    assert lazy.probabilities_dropped and not lazy.keeps_probabilities
    with pytest.raises(InputError, match="cluster"):
        plan_prediction(bundle, [np.zeros((32, 32))], options=PredictOptions(workers=2))


def test_bad_outputs_are_refused_before_the_model_is_loaded(images, tmp_path):
    image = images / "a.tif"
    with pytest.raises(InputError, match="must be a TIFF file"):
        plan_prediction(no_model, [image], out=tmp_path / "a.png")
    with pytest.raises(InputError, match="also the --image"):
        plan_prediction(no_model, [image], out=image)
    with pytest.raises(InputError, match="must be an OME-Zarr"):
        plan_prediction(no_model, [image], out=tmp_path / "a.ome.zarr",
                        probabilities=tmp_path / "p.png")
    (tmp_path / "old.ome.zarr").mkdir()
    with pytest.raises(InputError, match="exists; give --overwrite"):
        plan_prediction(no_model, [image], out=tmp_path / "old.ome.zarr")
    source = tmp_path / "in.ome.zarr"
    source.mkdir()
    with pytest.raises(InputError, match="is inside the --image"):
        plan_prediction(no_model, [source], out=source / "labels.ome.zarr")
    with pytest.raises(InputError, match="is a file"):
        plan_prediction(no_model, [images], out=image)


def test_a_rescale_factor_or_a_tiff_too_large_is_refused_block_by_block(bundle, images,
                                                                         tmp_path, monkeypatch):
    image = images / "a.tif"
    with pytest.raises(InputError, match="--rescale with a factor"):
        plan_prediction(no_model, [image], out=tmp_path / "a.ome.zarr",
                        options=PredictOptions(rescale=0.5))
    monkeypatch.setenv("NAPARI_UNET_MAX_IMAGE_BYTES", "100")
    with pytest.raises(InputError, match="as a TIFF; write an OME-Zarr instead"):
        plan_prediction(bundle, [image], out=tmp_path / "a.ome.zarr",
                        probabilities=tmp_path / "p.tif")


def test_the_predictor_options_follow_the_plan(bundle):
    plan = plan_prediction(bundle, [np.zeros((32, 32))], device="cpu", options=PredictOptions(
        rescale="off", foreground_threshold=0.7, tile_size=128, tta=True))
    predictor = Predictor(bundle, **plan.predictor_options())
    assert (predictor.device.type, predictor.rescale, predictor.foreground_threshold,
            predictor.tile_size, predictor.tta) == ("cpu", "off", 0.7, 128, True)
