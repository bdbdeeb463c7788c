"""Hostile inputs in the plugin: a damaged OME-Zarr opened with the reader, a folder
predicted into itself twice and a read-only output folder in *Predict folder*: a
notification each, never a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _zarr(path, damage=None):
    import zarr

    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    array = group.create_array("0", shape=(64, 64), chunks=(32, 32), dtype="uint16",
                               fill_value=0)
    array[...] = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) + 1
    group.attrs.update({"multiscales": [{"version": "0.4", "axes": [
        {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [{"path": "0"}]}]})
    if damage == "truncated":
        meta = path / "0" / ".zarray"
        meta.write_text(meta.read_text()[:30])
    elif damage == "dotdot":
        attrs = json.loads((path / ".zattrs").read_text())
        attrs["multiscales"][0]["datasets"][0]["path"] = "../elsewhere"
        (path / ".zattrs").write_text(json.dumps(attrs))
    elif damage == "missing":
        (path / "0" / "0.0").unlink()
    return path


@pytest.mark.parametrize(("damage", "message"), [
    ("truncated", "is not valid JSON"), ("dotdot", "which leaves the folder")])
def test_a_damaged_zarr_is_a_notification(damage, message, empty_workflow, notifications,
                                          tmp_path):
    viewer, widget = empty_workflow
    path = _zarr(tmp_path / "image.ome.zarr", damage)
    before = [layer.name for layer in viewer.layers]
    assert widget.data.open_path(path) is None
    assert any(m.startswith("Could not open image.ome.zarr") and message in m
               for m in notifications), notifications
    assert [layer.name for layer in viewer.layers] == before


def test_missing_chunks_open_with_a_warning(empty_workflow, notifications, tmp_path):
    """In the viewer the image opens (missing chunks shown as 0) and a warning says how
    many are missing; the command line refuses it unless told --missing-chunks fill."""
    viewer, widget = empty_workflow
    layer = widget.data.open_path(_zarr(tmp_path / "image.ome.zarr", "missing"))
    assert layer is not None
    assert np.asarray(layer.data)[:32, :32].max() == 0
    assert np.asarray(layer.data)[32:, 32:].min() > 0
    assert any("1 of its 4 chunks are missing" in m and "shown as 0" in m
               and "--missing-chunks" not in m for m in notifications), notifications


def _model():
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.models.unet import UNetConfig

    return ModelBundle.new(UNetConfig(n_classes=2, base_channels=4, depth=2), seed=0)


def test_a_folder_predicted_into_itself_twice(empty_workflow, run_worker, tmp_path):
    viewer, widget = empty_workflow
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        tifffile.imwrite(folder / f"{name}.tif", rng.integers(0, 255, (48, 48), np.uint8))
    widget.data.open_path(folder / "a.tif")
    widget.session.set_model(_model())
    panel = widget.predict.folder
    panel.out.value = str(folder)
    panel.run.native.click()
    run_worker(panel.worker)
    assert sorted(p.name for p in folder.iterdir()) == ["a.tif", "a_labels.tif", "b.tif",
                                                        "b_labels.tif"]
    panel.run.native.click()  # the outputs are not inputs: all done
    assert panel.worker is None and "All 2 images" in panel.status.value
    panel.redo.value = True
    panel.run.native.click()
    run_worker(panel.worker)
    assert [r.failed for r in panel.results] == [False, False]


def test_a_read_only_output_folder_is_a_notification(empty_workflow, notifications,
                                                     tmp_path):
    viewer, widget = empty_workflow
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "a.tif", np.random.default_rng(1).integers(0, 255, (32, 32), np.uint8))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        widget.data.open_path(folder / "a.tif")
        widget.session.set_model(_model())
        widget.predict.folder.out.value = str(locked)
        assert widget.predict.folder.start() is None
        assert any(f"{locked} is write-protected" in m and "labels.tif" not in m
                   for m in notifications), notifications
    finally:
        locked.chmod(0o755)
