"""*Save labels…*: classes or objects as chosen, named after the image, beside it."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet._napari.reader import read_layers
from napari_unet.core.io.tiff import read_tiff

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _all_foreground_model():
    """A model that calls every pixel foreground: the test then draws the predictions."""
    import torch

    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    bundle = ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2))
    state = dict(bundle.state_dict)
    state["outc.conv.weight"] = torch.zeros_like(state["outc.conv.weight"])
    state["outc.conv.bias"] = torch.tensor([0.0, 3.0])
    bundle.state_dict = state
    return bundle


def _two_objects(viewer, widget, run_worker):
    widget.session.set_model(_all_foreground_model())
    run_worker(widget.predict.predict())
    predictions = viewer.layers["nuclei predictions"]
    z = widget.session.current_slice()
    predictions.data[z] = 0
    predictions.data[z, 10:30, 10:30] = 1
    predictions.data[z, 50:60, 50:80] = 1
    predictions.data[z, 100:102, 100:102] = 1  # 4 px: below *Smallest object*
    return predictions, z


def test_save_labels_honours_split_into_objects(annotated_workflow, run_worker, tmp_path):
    viewer, widget = annotated_workflow
    predictions, z = _two_objects(viewer, widget, run_worker)

    classes = tmp_path / "classes.tif"
    assert widget.predict.save_labels(classes)
    np.testing.assert_array_equal(read_tiff(classes).data, predictions.data)

    widget.predict.instances.value = True  # ticked after predicting: split what is shown
    objects = tmp_path / "objects.tif"
    assert widget.predict.save_labels(objects)
    saved = read_tiff(objects).data
    assert saved.shape == predictions.data.shape
    assert sorted(np.unique(saved[z])) == [0, 1, 2]
    assert len(np.unique(saved[z, 10:30, 10:30])) == 1 and saved[z, 100, 100] == 0
    [(_data, _meta, kind)] = read_layers(str(objects))
    assert kind == "labels"

    run_worker(widget.predict.predict())  # with the instances layer: that layer is saved
    assert widget.predict.save_labels(objects)
    np.testing.assert_array_equal(read_tiff(objects).data,
                                  viewer.layers["nuclei instances"].data)


def test_default_save_name_is_beside_the_image(empty_workflow, tmp_path):
    viewer, widget = empty_workflow
    assert str(widget.predict.default_save_path()) == "nuclei_labels.tif"  # no file behind it
    path = tmp_path / "cells" / "embryo.tif"
    path.parent.mkdir()
    tifffile.imwrite(path, np.random.default_rng(0).integers(80, 4000, (4, 32, 32),
                                                             dtype=np.uint16))
    widget.data.open_path(path)
    assert widget.session.image.name == "embryo"
    assert widget.predict.default_save_path() == tmp_path / "cells" / "embryo_labels.tif"
