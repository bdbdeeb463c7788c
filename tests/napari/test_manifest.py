"""The manifest validates, every contribution imports, and nothing imports torch early."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from npe2 import PluginManifest

import napari_unet
from napari_unet import PLUGIN_NAME

MANIFEST = Path(napari_unet.__file__).parent / "napari.yaml"


def test_manifest_validates_and_imports():
    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == PLUGIN_NAME
    manifest.validate_imports()
    commands = manifest.contributions.commands
    assert len(commands) >= 10
    for command in commands:
        module, _, name = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), name))


def test_npe2_validate_command_accepts_the_installed_plugin():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", PLUGIN_NAME, "--imports"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_contributions_cover_the_loop():
    contributions = PluginManifest.from_file(MANIFEST).contributions
    assert {r.command for r in contributions.readers} == {f"{PLUGIN_NAME}.get_reader"}
    assert "*.tif" in contributions.readers[0].filename_patterns
    assert contributions.writers[0].layer_types == ["labels"]
    assert {s.key for s in contributions.sample_data} == {"nuclei", "nuclei_annotated",
                                                                 "nuclei_volume"}
    names = [w.display_name for w in contributions.widgets]
    for step in ("Data", "Annotate", "Train", "Predict", "Correct", "Workflow"):
        assert any(step in n for n in names), step


@pytest.mark.skipif(not os.environ.get("DISPLAY"), reason="needs the X display pytest-xvfb starts")
def test_opening_the_plugin_does_not_import_torch():
    script = textwrap.dedent(
        """
        import sys
        import napari
        import napari_unet
        from napari_unet._napari import reader, writer, sample_data
        from napari_unet._napari.workflow import WorkflowWidget
        from napari_unet._napari.data_panel import DataPanel
        from napari_unet._napari.annotate_panel import AnnotatePanel
        from napari_unet._napari.train_panel import TrainPanel
        from napari_unet._napari.predict_panel import PredictPanel
        from napari_unet._napari.correct_panel import CorrectPanel
        from napari_unet.samples import sample_path

        viewer = napari.Viewer(show=False)
        for data, meta, kind in sample_data.nuclei_annotated() + sample_data.nuclei_volume():
            getattr(viewer, f"add_{kind}")(data, **meta)
        viewer.open(str(sample_path("nuclei")), plugin=napari_unet.PLUGIN_NAME)
        viewer.window.add_dock_widget(WorkflowWidget(viewer))
        for panel in (DataPanel, AnnotatePanel, TrainPanel, PredictPanel, CorrectPanel):
            viewer.window.add_dock_widget(panel(viewer))
        viewer.close()
        assert "torch" not in sys.modules, "torch was imported"
        print("no torch")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no torch" in result.stdout
