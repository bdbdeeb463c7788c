import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import tifffile
import torch

from napari_unet.core.errors import InputError, ModelFileError
from napari_unet.core.io.label_images import looks_like_labels
from napari_unet.core.io.tiff import read_tiff, write_tiff
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.models.unet import UNetConfig


def test_bundle_round_trip(tmp_path):
    b = ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance",
                        history=[{"iterations": 3}])
    path = tmp_path / "model.pt"
    b.save(path)
    c = load_bundle(path)
    assert c.config == b.config and c.label_kind == "instance"
    assert c.class_names == ["background", "nucleus", "boundary"]
    assert c.history == [{"iterations": 3}]
    for k, v in b.state_dict.items():
        assert torch.equal(v, c.state_dict[k])
    assert not list(tmp_path.glob(".*tmp"))


def test_not_a_model_truncated_and_newer(tmp_path):
    path = tmp_path / "m.pt"
    ModelBundle.new(UNetConfig(base_channels=4, depth=2)).save(path)
    tif = tmp_path / "image.tif"
    tifffile.imwrite(tif, np.zeros((4, 4), np.uint8))
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        load_bundle(tif)
    truncated = tmp_path / "t.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated|damaged|not a napari-unet"):
        load_bundle(truncated)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="not a napari-unet model"):
        load_bundle(other)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    newer = tmp_path / "newer.pt"
    torch.save(payload, newer)
    with pytest.raises(ModelFileError, match="newer napari-unet"):
        load_bundle(newer)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_bundle(tmp_path / "missing.pt")


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    path = tmp_path / "evil.pt"
    torch.save({"format": "napari-unet model", "payload": _Evil()}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(ModelFileError, match="refused"):
        load_bundle(path)
    assert not marker.exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(ModelFileError):
        load_bundle(raw)
    assert not marker.exists()


def test_saving_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    first = ModelBundle.new(UNetConfig(base_channels=4, depth=2), seed=1)
    first.save(path)
    before = path.read_bytes()

    def crash(fd):  # the new model is written, but the disk fills before it is complete
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="No space left"):
        ModelBundle.new(UNetConfig(base_channels=4, depth=2), seed=2).save(path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


def test_tiff_round_trip_keeps_axes_scale_and_dtype(tmp_path):
    stack = np.random.default_rng(0).integers(0, 300, (3, 20, 30)).astype(np.uint16)
    path = tmp_path / "labels.tif"
    write_tiff(path, stack, scale=(2.0, 0.5, 0.5))
    back = read_tiff(path)
    assert back.axes == "ZYX" and back.data.dtype == np.uint16
    np.testing.assert_array_equal(back.data, stack)
    assert back.scale == pytest.approx((2.0, 0.5, 0.5))
    assert back.name == "labels"
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.pages[0].compression == 8  # zlib, opens in Fiji


def test_reader_errors(tmp_path):
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        read_tiff(empty)
    text = tmp_path / "notes.tif"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_tiff(text)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.zeros((64, 64), np.uint16))
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError):
        read_tiff(trunc)
    with pytest.raises(InputError, match="GiB"):
        read_tiff(good, max_bytes=100)
    with pytest.raises(InputError, match="does not exist"):
        read_tiff(tmp_path / "nope.tif")


def test_labels_detection():
    labels = np.zeros((32, 32), np.uint16)
    labels[4:8, 4:8] = 3
    assert looks_like_labels(labels)
    noisy = np.random.default_rng(0).integers(90, 4000, (32, 32)).astype(np.uint16)
    assert not looks_like_labels(noisy)
    assert looks_like_labels(noisy, hint=True)  # the file's metadata say labels
    assert not looks_like_labels(labels, hint=False)
    assert not looks_like_labels(np.zeros((4, 4), np.float32))
    # Many objects: more than 64 values, but piecewise constant.
    many = np.kron(np.arange(400, dtype=np.uint16).reshape(20, 20), np.ones((8, 8), np.uint16))
    assert looks_like_labels(many)
    assert not looks_like_labels(many + 1)  # no 0 background: unsure, an image


def test_core_does_not_import_gui_and_package_does_not_import_torch():
    code = (
        "import sys, napari_unet, napari_unet.core.io.tiff, napari_unet.core.train.data, napari_unet.samples\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "import napari_unet.core.train.trainer, napari_unet.core.predict.tiles, napari_unet.core.models.checkpoint\n"
        "bad = [m for m in ('qtpy', 'napari', 'magicgui', 'PyQt6', 'PyQt5') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
