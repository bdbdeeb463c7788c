"""bioimage.io packages: names with dots and accents, a full disk at export, weights
swapped after export, zip bombs; on the command line (a real subprocess) and in the GUI."""

# ruff: noqa: F811  (the GUI tests' fixtures are imported, then used as arguments)

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import yaml

from napari_unet.core.errors import ModelFileError
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.share.package import load_package
from tests.napari.conftest import (  # noqa: F401  (fixtures of the GUI tests)
    autosave_dir,
    empty_workflow,
    notifications,
    tiny_settings,
)

from .cli_process import digests, run_cli
from .conftest import assert_refused, tiny_bundle

pytest.importorskip("bioimageio.spec")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A real package of a tiny model, written once for the module (never modified)."""
    from napari_unet.core.share.export import export_bioimageio

    out = tmp_path_factory.mktemp("package") / "tiny.zip"
    rng = np.random.default_rng(0)
    export_bioimageio(tiny_bundle(), out, test_image=rng.random((64, 64), dtype=np.float32),
                      onnx=False)
    return out


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, np.random.default_rng(1).random((32, 32), dtype=np.float32))
    return path


def _rewrite(source: Path, target: Path, replace: dict[str, bytes | int]) -> None:
    """Copy the package ``source`` to ``target`` with some members replaced: by bytes, or
    by that many zero bytes (streamed, deflated: a zip bomb)."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED,
                                                         compresslevel=9) as zout:
        for info in zin.infolist():
            new = replace.get(info.filename)
            if new is None:
                zout.writestr(info, zin.read(info))
            elif isinstance(new, bytes):
                zout.writestr(info.filename, new)
            else:
                block = bytes(1 << 24)
                with zout.open(info.filename, "w", force_zip64=True) as fh:
                    for _ in range(new // len(block)):
                        fh.write(block)


def _weights_name(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        rdf = yaml.safe_load(zf.read("rdf.yaml"))
    return rdf["weights"]["pytorch_state_dict"]["source"]


def _predict(model: Path, image: Path, tmp_path: Path) -> tuple[int, str]:
    before = digests(tmp_path)
    result = run_cli("predict", "--model", model, "--image", image, "--out",
                     tmp_path / "labels.tif")
    assert digests(tmp_path) == before  # inputs unchanged, no output, no litter
    return result


# ---- names -------------------------------------------------------------------------------

@pytest.mark.parametrize("stem", ["nuclei.v2", "noyaux_é"])
def test_export_of_a_model_named_with_a_dot_or_an_accent_works(stem, tmp_path):
    model = tmp_path / f"{stem}.pt"
    tiny_bundle().save(model)
    before = model.read_bytes()
    rc, err = run_cli("export", "--model", model, "--out", tmp_path / f"{stem}.zip")
    assert rc == 0, err
    out = tmp_path / f"{stem}.zip"
    with zipfile.ZipFile(out) as zf:
        name = yaml.safe_load(zf.read("rdf.yaml"))["name"]
    assert name in ("napari-unet nuclei-v2", "napari-unet noyaux_e")
    assert load_package(out).config == load_bundle(model).config
    assert model.read_bytes() == before


def test_a_name_the_user_gives_is_used_when_valid(tmp_path):
    model = tmp_path / "nuclei.v2.pt"
    tiny_bundle().save(model)
    rc, err = run_cli("export", "--model", model, "--out", tmp_path / "p.zip", "--name",
                      "Nuclei (DAPI) v2")
    assert rc == 0, err
    with zipfile.ZipFile(tmp_path / "p.zip") as zf:
        assert yaml.safe_load(zf.read("rdf.yaml"))["name"] == "Nuclei (DAPI) v2"


def test_an_invalid_name_the_user_gives_is_one_line(tmp_path):
    model = tmp_path / "m.pt"
    tiny_bundle().save(model)
    before = digests(tmp_path)
    result = run_cli("export", "--model", model, "--out", tmp_path / "p.zip", "--name",
                     "noyaux.v2 é")
    assert_refused(result, r"the package name 'noyaux\.v2 é' holds '\.', 'é': bioimage\.io "
                           r"accepts .* for example 'noyaux-v2 e'")
    assert digests(tmp_path) == before


# ---- a full disk at export ---------------------------------------------------------------

@pytest.mark.parametrize("limit", [100_000, 400_000])
def test_export_onto_a_full_disk_names_the_out_the_user_gave(limit, tmp_path):
    model = tmp_path / "m.pt"
    tiny_bundle().save(model)
    before = digests(tmp_path)
    out = tmp_path / "out.zip"
    result = run_cli("export", "--model", model, "--out", out, file_size_limit=limit)
    assert_refused(result, rf"(File too large|could not write all of it).*: {out}$")
    assert "napari-unet-export-" not in result[1] and ".tmp" not in result[1]
    assert digests(tmp_path) == before


# ---- the weights' sha256 -----------------------------------------------------------------

def test_weights_swapped_after_export_are_refused(package, image, tmp_path):
    other = {k: v.clone() for k, v in tiny_bundle(seed=7).state_dict.items()}
    path = tmp_path / "weights.pt"
    torch.save(other, path)
    swapped = tmp_path / "swapped.zip"
    _rewrite(package, swapped, {_weights_name(package): path.read_bytes()})
    path.unlink()
    result = _predict(swapped, image, tmp_path)
    assert_refused(result, r"swapped\.zip was refused: its weights \(weights\.pt\) do not "
                           r"match the sha256 that its rdf\.yaml records .* changed or swapped")


def test_the_untouched_package_predicts(package, image, tmp_path):
    rc, err = run_cli("predict", "--model", package, "--image", image, "--out",
                      tmp_path / "labels.tif")
    assert rc == 0, err
    assert tifffile.imread(tmp_path / "labels.tif").shape == (32, 32)


# ---- zip bombs ---------------------------------------------------------------------------

def test_weights_that_unpack_far_beyond_the_architecture_are_refused(package, image,
                                                                     tmp_path):
    """A zip whose weights unpack to 512 MiB of zeros, for a U-Net of 30,000 parameters:
    refused from the zip's directory, before anything is unpacked."""
    bomb = tmp_path / "bomb.zip"
    _rewrite(package, bomb, {_weights_name(package): 512 << 20})
    assert bomb.stat().st_size < 2 << 20
    result = _predict(bomb, image, tmp_path)
    assert_refused(result, r"bomb\.zip was refused: its weights\.pt unpacks to 536\.9 MB "
                           r"\(its U-Net of [\d,]+ parameters needs at most [\d.]+ KB\); "
                           "nothing in it was loaded")
    assert "could run code" not in result[1]


def test_an_rdf_yaml_of_hundreds_of_megabytes_is_refused(package, image, tmp_path):
    bomb = tmp_path / "big_rdf.zip"
    _rewrite(package, bomb, {"rdf.yaml": 64 << 20})
    result = _predict(bomb, image, tmp_path)
    assert_refused(result, r"big_rdf\.zip was refused: its rdf\.yaml unpacks to 67\.1 MB "
                           r"\(a model's description takes a few KB; at most 1\.0 MB is read\)")


def test_a_zip_whose_directory_understates_a_member_is_not_unpacked_beyond_it(package,
                                                                             tmp_path):
    """The central directory says the weights are small, the data inflates to far more:
    reading stops at the bound and the package is refused."""
    from napari_unet.core.share.package import _member

    lying = tmp_path / "lying.zip"
    with zipfile.ZipFile(lying, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("weights.pt", bytes(64 << 20))
    with zipfile.ZipFile(lying) as zf:
        zf.getinfo("weights.pt").file_size = 1000  # what a forged directory would say
        with pytest.raises((zipfile.BadZipFile, ModelFileError)):
            _member(zf, "weights.pt", "lying.zip", limit=10_000)


# ---- the GUI's Export… -------------------------------------------------------------------

def _click_export(panel, monkeypatch, path: Path, name: str | None) -> list[str]:
    from qtpy.QtWidgets import QFileDialog, QInputDialog

    offered = []

    def ask_name(parent, title, label, text=""):
        offered.append(text)
        return (text if name is None else name), True

    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *a: (str(path), a[-1])))
    monkeypatch.setattr(QInputDialog, "getText", staticmethod(ask_name))
    panel.export.changed.emit(True)
    return offered


def test_gui_export_of_a_dotted_model_offers_a_valid_name(empty_workflow, notifications,
                                                          tmp_path, monkeypatch):
    _, widget = empty_workflow
    panel = widget.train.model
    model = tmp_path / "nuclei.v2.pt"
    tiny_bundle().save(model)
    assert panel.load_model(model)
    offered = _click_export(panel, monkeypatch, tmp_path / "nuclei.v2.zip", None)
    assert offered == ["napari-unet nuclei-v2"]
    assert any(m.startswith("Model exported to") for m in notifications), notifications
    with zipfile.ZipFile(tmp_path / "nuclei.v2.zip") as zf:
        assert yaml.safe_load(zf.read("rdf.yaml"))["name"] == "napari-unet nuclei-v2"


def test_gui_export_with_an_invalid_name_is_a_notification(empty_workflow, notifications,
                                                           tmp_path, monkeypatch):
    _, widget = empty_workflow
    panel = widget.train.model
    model = tmp_path / "noyaux_é.pt"
    tiny_bundle().save(model)
    before = model.read_bytes()
    assert panel.load_model(model)
    _click_export(panel, monkeypatch, tmp_path / "p.zip", "noyaux é.v2")
    assert any(m.startswith("Could not export the model: the package name 'noyaux é.v2' "
                            "holds") for m in notifications), notifications
    assert not (tmp_path / "p.zip").exists()
    assert model.read_bytes() == before
