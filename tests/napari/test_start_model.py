"""The Train panel's "Start from the nuclei model" box: new models from the shipped
weights by default, the controls' architecture when unchecked."""

from __future__ import annotations

import pytest
import torch

from napari_unet._napari.jobs import TrainJob
from napari_unet._napari.model_panel import START_SHAPE
from napari_unet._napari.state import ClassSpec
from napari_unet._napari.training import build_request
from napari_unet.core import config
from napari_unet.core.config import START_ARCHITECTURE, START_MODEL
from napari_unet.core.errors import InputError
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.train import plan

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")

KEY = "inc.double_conv.0.weight"


def _new_bundle(widget):
    """The bundle a press on Train would start from (built as the worker builds it)."""
    request = build_request(widget.session, widget.train.settings.every_image,
                            options=widget.train.options())
    return TrainJob(request)._build().bundle()


def test_the_start_architecture_is_the_shipped_models():
    assert load_bundle(START_MODEL).config == START_ARCHITECTURE
    c = START_ARCHITECTURE
    assert (c.depth, c.base_channels, c.bilinear) == START_SHAPE


def test_new_models_start_from_the_nuclei_model_by_default(make_napari_viewer):
    from napari_unet._napari.demo import open_demo

    _viewer, widget = open_demo(make_napari_viewer())
    panel = widget.train.model
    assert panel.pretrained.value is True
    assert "nuclei" in panel.pretrained.tooltip
    assert (panel.depth.value, panel.base_channels.value, panel.upsampling.value) == START_SHAPE
    assert not any(w.enabled for w in (panel.depth, panel.base_channels, panel.upsampling))
    assert panel.options()["start_model"] == "nuclei"

    # Class names from the Annotate panel still name the new model's classes.
    classes = widget.session.classes
    widget.session.set_classes([ClassSpec(1, "backdrop", classes[0].color),
                                ClassSpec(2, "cell", classes[1].color)])
    bundle = _new_bundle(widget)
    start = load_bundle(START_MODEL)
    assert bundle.config == start.config
    assert torch.equal(bundle.state_dict[KEY].float(), start.state_dict[KEY].float())
    assert bundle.class_names == ["backdrop", "cell"]


def test_training_fine_tunes_the_shipped_weights(annotated_workflow, run_worker):
    _viewer, widget = annotated_workflow
    widget.train.model.pretrained.value = True  # the fixture unchecks it for tiny models
    widget.train.form.iterations.value = 2
    widget.train.form.live_preview.value = False
    run_worker(widget.train.start_training())
    bundle = widget.session.bundle
    assert bundle is not None and bundle.iterations == 2
    start = load_bundle(START_MODEL)
    assert bundle.config.depth == 4 and bundle.config.base_channels == 16
    after, before = bundle.state_dict[KEY].float(), start.state_dict[KEY].float()
    assert not torch.equal(after, before)  # trained...
    assert torch.allclose(after, before, atol=0.02)  # ...from the shipped weights
    assert widget.train.model.info.value.startswith("Model: trained here")
    assert not widget.train.model.pretrained.enabled


def test_unchecking_gives_the_controls_architecture(make_napari_viewer):
    from napari_unet._napari.demo import open_demo

    _viewer, widget = open_demo(make_napari_viewer())
    panel = widget.train.model
    panel.pretrained.value = False
    assert all(w.enabled for w in (panel.depth, panel.base_channels, panel.upsampling))
    # The controls' own values come back: the device's defaults ("auto").
    assert (panel.depth.value, panel.base_channels.value) == (0, 0)
    assert panel.depth.native.currentText() == "auto"
    defaults = config.defaults_for("annotation", "cpu")
    c = _new_bundle(widget).config
    assert (c.depth, c.base_channels) == (defaults.depth, defaults.base_channels)
    panel.depth.value = 2
    panel.base_channels.value = 8
    panel.upsampling.value = False
    assert panel.options() == {"start_model": "none", "depth": 2, "base_channels": 8,
                               "bilinear": False, "checkpointing": False}
    bundle = _new_bundle(widget)
    c = bundle.config
    assert (c.depth, c.base_channels, c.bilinear) == (2, 8, False)
    assert bundle.class_names == [s.name for s in widget.session.classes]

    # Checking again shows the nuclei model's shape; unchecking restores the choices.
    panel.pretrained.value = True
    assert (panel.depth.value, panel.base_channels.value, panel.upsampling.value) == START_SHAPE
    panel.pretrained.value = False
    assert (panel.depth.value, panel.base_channels.value, panel.upsampling.value) == (2, 8, False)


def test_a_missing_start_model_is_one_sentence_in_the_gui_and_the_cli(
        monkeypatch, tmp_path, annotated_workflow, notifications, run_worker):
    monkeypatch.setattr(plan, "START_MODEL", tmp_path / "gone.pt")
    with pytest.raises(InputError, match="starting model is missing.*--start-model none"):
        plan.start_bundle("annotation", 3)
    _viewer, widget = annotated_workflow
    widget.train.model.pretrained.value = True
    run_worker(widget.train.start_training())
    assert widget.session.bundle is None
    assert any("starting model is missing" in m for m in notifications)
