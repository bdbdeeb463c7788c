"""The reader and writer round-trip stacks and label images; the samples open."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_unet import PLUGIN_NAME
from napari_unet._napari.reader import get_reader
from napari_unet._napari.writer import write_labels
from napari_unet.core.io.tiff import read_tiff, write_tiff


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
    by_values = tmp_path / "result.tif"
    write_tiff(by_values, labels)
    many = np.kron(np.arange(400, dtype=np.uint16).reshape(20, 20), np.ones((8, 8), np.uint16))
    many_objects = tmp_path / "objects.tif"
    write_tiff(many_objects, many)
    for path, expected in ((by_values, labels), (many_objects, many)):
        [(data, _meta, kind)] = get_reader(str(path))(str(path))
        assert kind == "labels"
        np.testing.assert_array_equal(data, expected)


@pytest.mark.parametrize("name", ["nuclei_full_length.tif", "wavelength_488.tif",
                                  "segment_raw.tif", "bigtiff.tif", "nuclei_labels.tif"])
def test_raw_images_open_as_images_whatever_their_name(tmp_path, name):
    raw = np.random.default_rng(0).integers(80, 4000, (5, 32, 32), dtype=np.uint16)
    path = tmp_path / name
    tifffile.imwrite(path, raw)
    [(data, meta, kind)] = get_reader(str(path))(str(path))
    assert kind == "image"
    np.testing.assert_array_equal(data, raw)
    assert meta["axis_labels"] == ("Z", "Y", "X")  # a plain TIFF's unnamed axis is Z


def test_metadata_decides_labels_or_image(tmp_path):
    """An ImageJ property, tifffile's description or an OME map annotation that says
    labels makes a noisy-looking integer file Labels; one that says image, an Image."""
    values = np.random.default_rng(1).integers(0, 3000, (32, 32), dtype=np.uint16)
    imagej = tmp_path / "a.tif"
    tifffile.imwrite(imagej, values, imagej=True,
                     metadata={"axes": "YX", "Properties": {"labels": "true"}})
    shaped = tmp_path / "b.tif"
    tifffile.imwrite(shaped, values, metadata={"axes": "YX", "kind": "labels"})
    ome = tmp_path / "c.ome.tif"
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/'
           'Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder='
           '"XYCZT" Type="uint16" SizeX="32" SizeY="32" SizeC="1" SizeZ="1" SizeT="1">'
           '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData/></Pixels>'
           '<AnnotationRef ID="Annotation:0"/></Image><StructuredAnnotations>'
           '<MapAnnotation ID="Annotation:0"><Value><M K="labels">true</M></Value>'
           '</MapAnnotation></StructuredAnnotations></OME>')
    tifffile.imwrite(ome, values, description=xml, metadata=None)
    for path in (imagej, shaped, ome):
        [(_data, _meta, kind)] = get_reader(str(path))(str(path))
        assert kind == "labels", path.name
    few = np.zeros((32, 32), np.uint8)
    few[4:9, 4:9] = 3
    declared_image = tmp_path / "d.tif"
    tifffile.imwrite(declared_image, few, imagej=True,
                     metadata={"axes": "YX", "Properties": {"kind": "image"}})
    [(_data, _meta, kind)] = get_reader(str(declared_image))(str(declared_image))
    assert kind == "image"


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
    [image] = viewer.open(str(path), plugin=PLUGIN_NAME)
    assert image.data.shape == (4, 32, 48)
    assert tuple(image.scale) == (1.5, 1.0, 1.0)
    labels = viewer.add_labels((np.asarray(image.data) > 2000).astype(np.uint8), name="mask")
    out = tmp_path / "mask.tif"
    labels.save(str(out), plugin=PLUGIN_NAME)
    [reopened] = viewer.open(str(out), plugin=PLUGIN_NAME)
    assert reopened.__class__.__name__ == "Labels"
    np.testing.assert_array_equal(reopened.data, labels.data)


def test_sample_data_opens(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN_NAME, "nuclei_annotated")
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei annotations"]
    image, annotations = viewer.layers
    assert image.data.shape == annotations.data.shape == (5, 256, 256)
    assert set(np.unique(annotations.data)) == {0, 1, 2}
    viewer.open_sample(PLUGIN_NAME, "nuclei")
    assert len(viewer.layers) == 3


def test_plain_stack_axes_read_z_in_viewer_and_data_panel(make_napari_viewer, tmp_path):
    """A stack saved without axis names (tifffile calls the pages Q) reads Z / Y / X."""
    from napari_unet._napari.data_panel import DataPanel

    viewer = make_napari_viewer()
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, np.random.default_rng(2).integers(80, 4000, (6, 40, 48),
                                                             dtype=np.uint16))
    [image] = viewer.open(str(path), plugin=PLUGIN_NAME)
    assert tuple(image.axis_labels) == ("Z", "Y", "X")
    panel = DataPanel(viewer)
    panel.image.value = image
    assert "(ZYX)" in panel.info.value and "Q" not in panel.info.value
    viewer.add_image(np.zeros((3, 8, 8), np.float32), name="from elsewhere")
    panel.image.value = viewer.layers["from elsewhere"]
    assert "(ZYX)" in panel.info.value


def _dim_stack() -> np.ndarray:
    """A z-stack of dim nuclei (about 500 over a background of 100) with a few saturated
    voxels, as a confocal stack often has: napari's own minimum..maximum shows it black."""
    rng = np.random.default_rng(3)
    stack = rng.normal(100, 5, (12, 40, 48))
    stack[:, 10:20, 10:20] += 400
    stack[5, 0, :4] = 60000
    return np.clip(stack, 0, 65535).astype(np.uint16)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_stack_opens_with_the_contrast_the_model_sees(make_napari_viewer, tmp_path,
                                                        monkeypatch, lazy):
    from napari_unet.core.io import lazy as lazy_io
    from napari_unet.core.normalise import Normalisation

    stack = _dim_stack()
    path = tmp_path / "dim.tif"
    write_tiff(path, stack, axes="ZYX", scale=(2.0, 0.5, 0.5))
    viewer = make_napari_viewer()
    if lazy:  # as a file too large for memory opens
        monkeypatch.setattr(lazy_io, "fits_in_memory", lambda nbytes: False)
    [layer] = viewer.open(str(path), plugin=PLUGIN_NAME)
    assert isinstance(layer.data, np.ndarray) is not lazy
    norm = Normalisation()
    expected = np.percentile(stack, [norm.low, norm.high])
    np.testing.assert_allclose(layer.contrast_limits, expected, rtol=0.02)
    low, high = layer.contrast_limits
    assert high < 1000 < stack.max()  # the nuclei are not left dim by the hot pixels
    assert low <= 100 < 500 <= high


def test_channels_get_their_own_contrast_and_flat_images_napari_s(tmp_path):
    from napari_unet._napari.reader import display_range

    two = np.stack([_dim_stack(), _dim_stack() // 4 + 7], axis=1)  # Z C Y X
    [first, second] = display_range(two, channel_axis=1)
    assert first[1] > 3 * second[1] - 30 and second[0] >= 7
    assert display_range(np.full((3, 8, 8), 5, np.uint16)) is None
    assert display_range(np.full((3, 8, 8), np.nan, np.float32)) is None
    floats = _dim_stack().astype(np.float32)
    floats[0, 0, 0] = np.inf
    assert np.isfinite(display_range(floats)).all()
