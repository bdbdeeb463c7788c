"""The Train panel's Export…: a bioimage.io package of the current model."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from napari_unet.core.config import UNetConfig
from napari_unet.core.models.checkpoint import ModelBundle, load_bundle
from napari_unet.core.share.package import load_package

pytest.importorskip("bioimageio.spec")


def test_export_writes_a_package_of_the_current_model(empty_workflow, notifications,
                                                      tmp_path):
    viewer, widget = empty_workflow
    panel = widget.train.model
    assert not panel.export.enabled
    assert not panel.export_model(tmp_path / "none.zip")
    assert any("no trained model to export" in m for m in notifications)
    assert not (tmp_path / "none.zip").exists()

    model = tmp_path / "tiny.pt"
    ModelBundle.new(UNetConfig(n_classes=3, base_channels=4, depth=2), "instance").save(model)
    assert panel.load_model(model) and panel.export.enabled
    assert panel._export_name() == str(tmp_path / "tiny.zip")  # beside the model
    viewer.dims.set_current_step(0, 1)
    out = tmp_path / "tiny.zip"
    assert panel.export_model(out)
    assert any("exported" in m for m in notifications)
    back = load_package(out)
    assert back.config == load_bundle(model).config and back.label_kind == "instance"
    # the test input is the slice in view of the image, cropped around its centre
    with zipfile.ZipFile(out) as zf, zf.open("test_input.npy") as fh:
        test_input = np.load(fh)[0, 0]
    image = np.asarray(viewer.layers["nuclei"].data[1], np.float32)
    h, w = test_input.shape
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    np.testing.assert_array_equal(test_input, image[y0 : y0 + h, x0 : x0 + w])

    # the package loads as the current model; exporting onto it is refused
    assert panel.load_model(out)
    before = out.read_bytes()
    notifications.clear()
    assert not panel.export_model(out)
    assert any("replace an input" in m for m in notifications)
    assert out.read_bytes() == before
    assert panel._export_name() == str(tmp_path / "tiny-export.zip")


def test_export_button_asks_where_beside_the_model(empty_workflow, tmp_path, monkeypatch):
    from qtpy.QtWidgets import QApplication, QFileDialog, QInputDialog

    viewer, widget = empty_workflow
    panel = widget.train.model
    model = tmp_path / "tiny.pt"
    ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2)).save(model)
    assert panel.load_model(model)
    asked = []
    chosen = tmp_path / "chosen"  # without .zip: the package gets it

    def ask(parent, title, default, filters):
        asked.append((default, filters))
        return str(chosen), filters

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(ask))
    named = []

    def ask_name(parent, title, label, text=""):
        named.append(text)
        return text, True

    monkeypatch.setattr(QInputDialog, "getText", staticmethod(ask_name))
    panel.export.changed.emit(True)  # the button's click
    assert asked == [(str(tmp_path / "tiny.zip"), "bioimage.io model package (*.zip)")]
    assert named == ["napari-unet chosen"]  # then the name, derived from the file's
    assert load_package(tmp_path / "chosen.zip").n_classes == 2
    assert QApplication.overrideCursor() is None
