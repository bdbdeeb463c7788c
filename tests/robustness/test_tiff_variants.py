"""TIFFs as microscopes and Fiji write them: LZW, JPEG, several series; declared sizes."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import tifffile

from napari_unet._napari.reader import read_layers
from napari_unet.core.errors import InputError
from napari_unet.core.io.tiff import read_tiff

from .conftest import assert_refused


@pytest.mark.parametrize(("compression", "dtype"), [("lzw", np.uint16), ("jpeg", np.uint8),
                                                     ("zstd", np.uint16)])
def test_compressed_tiffs_are_read(compression, dtype, tmp_path):
    image = (np.arange(64 * 64) % 200).astype(dtype).reshape(64, 64)
    path = tmp_path / f"{compression}.tif"
    tifffile.imwrite(path, image, compression=compression)
    back = read_tiff(path).data
    assert back.shape == image.shape and back.dtype == dtype
    if compression == "jpeg":  # lossy
        assert np.abs(back.astype(int) - image.astype(int)).mean() < 10
    else:
        np.testing.assert_array_equal(back, image)


def _two_series(path):
    with tifffile.TiffWriter(path) as tif:
        tif.write(np.full((40, 40), 7, np.uint8))
        tif.write(np.arange(3 * 40 * 40, dtype=np.uint16).reshape(3, 40, 40) % 1000,
                  metadata={"axes": "ZYX"})
    return path


def test_a_file_of_several_series_is_refused_with_the_list(tmp_path, model_file, cli):
    path = _two_series(tmp_path / "multi.tif")
    with pytest.raises(InputError, match=r"2 images \(series 0: YX 40x40 uint8; 1: ZYX "
                                         r"3x40x40 uint16\).*--series"):
        read_tiff(path)
    out = tmp_path / "out.tif"
    assert_refused(cli("predict", "--model", model_file, "--image", path, "--out", out),
                   r"multi.tif holds 2 images .*--series N")
    assert_refused(cli("predict", "--model", model_file, "--image", path, "--out", out,
                       "--series", "2"), r"--series 2 does not exist.*series 0 to 1")
    assert cli("predict", "--model", model_file, "--image", path, "--out", out,
               "--series", "1")[0] == 0
    assert tifffile.imread(out).shape == (3, 40, 40)
    layers = read_layers(path)  # the napari reader opens each series as a layer
    assert [meta["name"] for _, meta, _ in layers] == ["multi [series 0]", "multi [series 1]"]


def test_a_tiff_that_declares_more_than_it_holds_is_refused_at_once(tmp_path):
    path = tmp_path / "sparse.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8))
    raw = bytearray(path.read_bytes())
    # Declare 20000 x 20000 pixels (ImageWidth, ImageLength) in an 8 KB file.
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        offsets = tags["ImageWidth"].valueoffset, tags["ImageLength"].valueoffset
        sizes = tags["ImageWidth"].dtype, tags["ImageLength"].dtype
    for offset, size in zip(offsets, sizes):
        fmt = "<H" if int(size) == 3 else "<I"
        struct.pack_into(fmt, raw, offset, 20000)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"declares .*20000, 20000.*truncated or damaged"):
        read_tiff(path)
