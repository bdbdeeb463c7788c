"""One rule for the type of written labels: the smallest unsigned type holding the
largest label, uint32 for objects not counted yet; every writer follows it."""

import numpy as np
import pytest
import tifffile

from napari_unet._napari.writer import write_labels
from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import open_image
from napari_unet.core.io.sparse import save_labels_zarr
from napari_unet.core.io.tiff import write_tiff
from napari_unet.core.labels import labels_dtype
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.blocks import predict_blocks
from napari_unet.core.predict.tiles import Predictor


def test_the_smallest_unsigned_type_that_holds_the_largest_label():
    assert [labels_dtype(m) for m in (0, 255, 256, 65535, 65536, 2**32)] == [
        np.uint8, np.uint8, np.uint16, np.uint16, np.uint32, np.uint64]
    assert labels_dtype(3, instances=True) == np.uint8  # counted objects: as small
    assert labels_dtype(None, instances=True) == np.uint32  # objects not counted yet
    with pytest.raises(InputError, match="negative"):
        labels_dtype(-1)
    with pytest.raises(ValueError):
        labels_dtype(None)


@pytest.mark.parametrize("largest", [7, 300, 70000])
def test_tiff_ome_zarr_and_the_napari_writer_write_that_type(tmp_path, largest):
    labels = np.zeros((2, 8, 8), np.int64)  # int32 or int64 as predictions come
    labels[1, 2:4, 2:4] = largest
    want = labels_dtype(largest)
    write_tiff(tmp_path / "a.tif", labels)
    (written,) = write_labels(str(tmp_path / "b.tif"), labels, {})
    save_labels_zarr(tmp_path / "c.ome.zarr", labels)
    assert tifffile.imread(tmp_path / "a.tif").dtype == want
    assert tifffile.imread(written).dtype == want
    assert open_image(tmp_path / "c.ome.zarr", lazy=False).data.dtype == want


def test_a_block_prediction_numbers_objects_in_uint32_and_classes_by_their_count(tmp_path):
    bundle = ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2), "semantic")
    predictor = Predictor(bundle, device="cpu", tile_size=64)
    image = np.random.default_rng(0).random((40, 40)).astype(np.float32)
    predict_blocks(predictor, image, tmp_path / "objects.ome.zarr", instances=True)
    predict_blocks(predictor, image, tmp_path / "classes.ome.zarr")
    objects = open_image(tmp_path / "objects.ome.zarr", lazy=False).data
    classes = open_image(tmp_path / "classes.ome.zarr", lazy=False).data
    assert objects.dtype == labels_dtype(None, instances=True) == np.uint32
    assert classes.dtype == labels_dtype(bundle.n_classes - 1) == np.uint8
