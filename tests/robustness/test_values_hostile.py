"""Values and dtypes: uint64 ground truth, images without one finite value, float64
beyond float32's range, a model with NaN weights, a layer scale of 0 in the writer."""

# ruff: noqa: F811  (the GUI tests' fixtures are imported, then used as arguments)

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.core.metrics import evaluate
from napari_unet.core.normalise import Normalisation
from tests.napari.conftest import (  # noqa: F401  (fixtures of the GUI tests)
    autosave_dir,
    empty_workflow,
    notifications,
    run_worker,
    tiny_settings,
)

from .cli_process import digests, run_cli, run_process
from .conftest import TINY, assert_refused, sparse_annotations, tiny_bundle


def _objects(dtype, ids, shape=(40, 40)) -> np.ndarray:
    truth = np.zeros(shape, dtype)
    truth[2:12, 2:12] = ids[0]
    truth[20:30, 20:30] = ids[1]
    return truth


# ---- evaluate: ground truth of any integer type ------------------------------------------

@pytest.mark.parametrize(("dtype", "ids"), [
    (np.uint64, (1, 2)), (np.uint64, (2**32 + 5, 2**63 + 7)), (np.int8, (1, 2)),
    (np.int16, (300, 7)), (np.uint32, (1, 2**32 - 1)), (np.int64, (2**40, 3)),
    (np.uint16, (65535, 1)),
])
def test_instance_scores_for_every_integer_dtype(dtype, ids):
    truth = _objects(dtype, ids)
    instances = _objects(np.int32, (1, 2))
    scores = evaluate((instances > 0).astype(np.uint8), truth, "instance", instances)
    assert scores["foreground_iou"] == 1.0 and scores["f1_50"] == 1.0
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 0, 0)


@pytest.mark.parametrize("ids", [(1, 2), (2**32 + 5, 2**63 + 7)])
def test_evaluate_with_uint64_ground_truth(ids, tmp_path, model_file):
    image, truth = tmp_path / "image.tif", tmp_path / "truth.tif"
    tifffile.imwrite(image, np.random.default_rng(0).random((40, 40), dtype=np.float32))
    tifffile.imwrite(truth, _objects(np.uint64, ids))
    before = digests(tmp_path)
    proc = run_process("evaluate", "--model", model_file, "--image", image, "--labels", truth,
                       "--labels-kind", "instance")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)
    assert scores["tp"] + scores["fn"] == 2  # both objects of the ground truth counted
    assert digests(tmp_path) == before


# ---- images without finite values --------------------------------------------------------

@pytest.mark.parametrize("fill", [np.nan, np.inf])
def test_training_on_an_image_without_finite_values_is_refused(fill, tmp_path):
    ip, lp = tmp_path / "image.tif", tmp_path / "image_annotations.tif"
    tifffile.imwrite(ip, np.full((2, 40, 40), fill, np.float32))
    tifffile.imwrite(lp, sparse_annotations((2, 40, 40)))
    before = digests(tmp_path)
    result = run_cli("train", "--image", ip, "--labels", lp, "--out", tmp_path / "m.pt",
                     *TINY)
    assert_refused(result, r"image\.tif has no finite values \(every pixel is NaN or "
                           r"infinite\)")
    assert digests(tmp_path) == before


def test_predicting_an_image_without_finite_values_is_refused(tmp_path, model_file):
    ip = tmp_path / "nan.tif"
    tifffile.imwrite(ip, np.full((40, 40), np.nan, np.float64))
    before = digests(tmp_path)
    result = run_cli("predict", "--model", model_file, "--image", ip, "--out",
                     tmp_path / "labels.tif")
    assert_refused(result, r"nan\.tif has no finite values")
    assert digests(tmp_path) == before


def test_float64_beyond_float32s_range_is_normalised_as_it_is():
    rng = np.random.default_rng(0)
    image = rng.random((3, 64, 64))
    image[0, :4] = np.nan
    norm = Normalisation()
    np.testing.assert_allclose(norm.apply(image * 1e300), norm.apply(image), atol=1e-5)
    assert np.isfinite(norm.apply(image * 1e300)).all()


def test_float64_beyond_float32s_range_predicts_as_the_same_image_scaled(tmp_path,
                                                                         model_file):
    rng = np.random.default_rng(2)
    image = rng.random((48, 48))
    small, huge = tmp_path / "small.tif", tmp_path / "huge.tif"
    tifffile.imwrite(small, image.astype(np.float32))
    tifffile.imwrite(huge, image * 1e300)
    for path in (small, huge):
        rc, err = run_cli("predict", "--model", model_file, "--image", path, "--out",
                          tmp_path / f"{path.stem}_labels.tif", "--probabilities",
                          tmp_path / f"{path.stem}_probabilities.tif")
        assert rc == 0, err
    a = tifffile.imread(tmp_path / "small_probabilities.tif")
    b = tifffile.imread(tmp_path / "huge_probabilities.tif")
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert a.std() > 0  # the probabilities depend on the image, not a constant


def test_a_model_with_nan_weights_is_refused(tmp_path):
    bundle = tiny_bundle()
    state = dict(bundle.state_dict)
    state["outc.conv.weight"] = torch.full_like(state["outc.conv.weight"], float("nan"))
    bundle.state_dict = state
    model = tmp_path / "nan.pt"
    bundle.save(model)
    ip = tmp_path / "image.tif"
    tifffile.imwrite(ip, np.random.default_rng(0).random((40, 40), dtype=np.float32))
    before = digests(tmp_path)
    result = run_cli("predict", "--model", model, "--image", ip, "--out",
                     tmp_path / "labels.tif")
    assert_refused(result, r"nan\.pt cannot be used: 1 of its weight tensors "
                           r"\(outc\.conv\.weight\) hold NaN or infinite values")
    assert digests(tmp_path) == before


# ---- the GUI -----------------------------------------------------------------------------

def test_training_on_an_all_nan_layer_is_a_notification(empty_workflow, notifications,
                                                        run_worker):
    viewer, widget = empty_workflow
    shape = viewer.layers["nuclei"].data.shape
    layer = viewer.add_image(np.full(shape, np.nan, np.float32), name="all nan")
    widget.data.image.value = layer
    annotations = widget.annotate.create_layer()
    annotations.data[0, 10:30, 10:60] = 1
    annotations.data[0, 100:120, 100:120] = 2
    annotations.refresh()
    painted = np.asarray(annotations.data).copy()
    run_worker(widget.train.start_training())
    assert any("has no finite values" in m for m in notifications), notifications
    assert widget.session.bundle is None and widget.train.start.enabled
    np.testing.assert_array_equal(np.asarray(annotations.data), painted)


@pytest.mark.parametrize("scale", [(0.0, 1.0, 1.0), (1.0, -2.0, 1.0), (1.0, 1.0, np.inf),
                                   (1.0, 1e-320, 1.0)])
def test_the_writer_stores_labels_of_a_scale_a_tiff_cannot_hold(scale, empty_workflow,
                                                                 notifications, tmp_path):
    from napari_unet._napari.writer import write_labels

    viewer, _ = empty_workflow
    ids = np.zeros(viewer.layers["nuclei"].data.shape, np.uint32)
    ids[0, 5:9, 5:9] = 70_000
    layer = viewer.add_labels(ids, name="objects", scale=(2.0, 0.5, 0.5))
    data, meta, _ = layer.as_layer_data_tuple()
    meta["scale"] = list(scale)  # what napari itself refuses to hold: 0, negative...
    [written] = write_labels(str(tmp_path / "objects.tif"), data, meta)
    back = tifffile.imread(written)
    np.testing.assert_array_equal(back, ids)
    assert any("the layer's scale" in m and "cannot be stored in a TIFF" in m
               for m in notifications), notifications


def test_predicting_an_all_nan_layer_is_a_notification(empty_workflow, notifications,
                                                       tmp_path):
    viewer, widget = empty_workflow
    model = tmp_path / "m.pt"
    tiny_bundle().save(model)
    assert widget.train.model.load_model(model)
    shape = viewer.layers["nuclei"].data.shape
    layer = viewer.add_image(np.full(shape, np.nan, np.float32), name="all nan")
    widget.data.image.value = layer
    widget.predict.scope.value = "stack"
    assert widget.predict.predict() is None
    assert any(m.startswith("Cannot predict: the image has no finite values") for m in
               notifications), notifications
    assert "all nan predictions" not in [lay.name for lay in viewer.layers]
