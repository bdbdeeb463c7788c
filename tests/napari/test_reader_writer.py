"""The reader and writer round-trip stacks and label images; the samples open."""

from __future__ import annotations

import numpy as np
import tifffile

from napari_unet._napari.reader import get_reader
from napari_unet._napari.writer import write_labels
from napari_unet.core.io import read_tiff, write_tiff


def _stack(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, size=(4, 32, 48), dtype=np.uint16)


def test_reader_ignores_other_files(tmp_path):
    assert get_reader(str(tmp_path / "image.png")) is None
    assert get_reader([str(tmp_path / "a.tif"), str(tmp_path / "b.png")]) is None
    assert get_reader(str(tmp_path / "a.ome.tif")) is not None


def test_stack_opens_as_one_image_with_axes_and_scale(tmp_path):
    path = tmp_path / "cells.tif"
    stack = _stack()
    write_tiff(path, stack, axes="ZYX", scale=(2.0, 0.5, 0.25))
    [(data, meta, kind)] = get_reader(str(path))(str(path))
    assert kind == "image"
    np.testing.assert_array_equal(data, stack)
    assert meta["name"] == "cells"
    assert meta["axis_labels"] == ("Z", "Y", "X")
    np.testing.assert_allclose(meta["scale"], (2.0, 0.5, 0.25), rtol=1e-5)


def test_channels_are_split(tmp_path):
    path = tmp_path / "two_channels.tif"
    data = np.stack([_stack(1), _stack(2)], axis=1)  # Z C Y X
    write_tiff(path, data, axes="ZCYX")
    [(out, meta, kind)] = get_reader(str(path))(str(path))
    assert kind == "image"
    assert meta["channel_axis"] == 1
    assert len(meta["scale"]) == 3
    assert meta["name"] == ["two_channels [0]", "two_channels [1]"]


def test_label_images_open_as_labels(tmp_path):
    labels = np.zeros((3, 32, 32), np.uint16)
    labels[:, 4:10, 4:10] = 1
    labels[:, 20:30, 5:15] = 7
    by_name = tmp_path / "nuclei_labels.tif"
    write_tiff(by_name, labels)
    by_values = tmp_path / "segmentation_result.tif"
    write_tiff(by_values, labels)
    for path in (by_name, by_values):
        [(data, _meta, kind)] = get_reader(str(path))(str(path))
        assert kind == "labels"
        np.testing.assert_array_equal(data, labels)


def test_writer_round_trips_labels_compressed(tmp_path):
    labels = np.zeros((4, 32, 48), np.uint8)
    labels[1, 5:20, 5:30] = 2
    labels[3, 10:12, 0:48] = 1
    [written] = write_labels(str(tmp_path / "out"), labels, {"scale": (3.0, 1.0, 1.0)})
    assert written.endswith(".tif")
    with tifffile.TiffFile(written) as tif:
        assert tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert tif.is_imagej
    back = read_tiff(written)
    np.testing.assert_array_equal(back.data, labels)
    assert back.scale[0] == 3.0


def test_viewer_round_trip_through_the_plugin(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    path = tmp_path / "stack.tif"
    write_tiff(path, _stack(3), axes="ZYX", scale=(1.5, 1.0, 1.0))
    [image] = viewer.open(str(path), plugin="napari-unet")
    assert image.data.shape == (4, 32, 48)
    assert tuple(image.scale) == (1.5, 1.0, 1.0)
    labels = viewer.add_labels((np.asarray(image.data) > 2000).astype(np.uint8), name="mask")
    out = tmp_path / "mask.tif"
    labels.save(str(out), plugin="napari-unet")
    [reopened] = viewer.open(str(out), plugin="napari-unet")
    assert reopened.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(reopened.data, labels.data)


def test_sample_data_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-unet", "nuclei_annotated")
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei annotations"]
    image, annotations = viewer.layers
    assert image.data.shape == annotations.data.shape == (5, 256, 256)
    assert set(np.unique(annotations.data)) == {0, 1, 2}
    viewer.open_sample("napari-unet", "nuclei")
    assert len(viewer.layers) == 3
