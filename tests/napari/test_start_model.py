"""The Train panel's "Start from the nuclei model" box: new models from the shipped
weights by default, the controls' architecture when unchecked."""

from __future__ import annotations

import logging

import pytest
import torch

import napari_unet.defaults as defaults
from napari_unet._napari.jobs import TrainJob, start_bundle
from napari_unet._napari.model_panel import START_SHAPE
from napari_unet._napari.state import ClassSpec
from napari_unet._napari.training import build_request
from napari_unet.core.checkpoint import load_bundle

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")

KEY = "inc.double_conv.0.weight"
SHIPPED = defaults.START_MODEL


def _new_bundle(widget):
    """The bundle a press on Train would start from (built as the worker builds it)."""
    s = widget.train.settings
    request = build_request(widget.session, s.every_image,
                            architecture=widget.train.model.architecture,
                            train_options=s.train_options(), elastic_sigma=s.elastic_sigma)
    return TrainJob(request)._build().bundle()


def test_the_panel_shape_is_the_start_model_shape():
    c = defaults.start_model_config()
    assert (c.depth, c.base_channels, c.bilinear) == START_SHAPE
    assert defaults.START_MODEL.is_file()


def test_new_models_start_from_the_nuclei_model_by_default(make_napari_viewer):
    from napari_unet._napari.demo import open_demo

    _viewer, widget = open_demo(make_napari_viewer())
    panel = widget.train.model
    assert panel.pretrained.value is True
    assert "nuclei" in panel.pretrained.tooltip
    assert (panel.depth.value, panel.base_channels.value, panel.upsampling.value) == START_SHAPE
    assert not any(w.enabled for w in (panel.depth, panel.base_channels, panel.upsampling))
    arch = panel.architecture
    assert (arch.depth, arch.base_channels, arch.bilinear, arch.pretrained) == (4, 16, True, True)

    # Class names from the Annotate panel still name the new model's classes.
    classes = widget.session.classes
    widget.session.set_classes([ClassSpec(1, "backdrop", classes[0].color),
                                ClassSpec(2, "cell", classes[1].color)])
    bundle = _new_bundle(widget)
    start = load_bundle(defaults.START_MODEL)
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
    start = load_bundle(defaults.START_MODEL)
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
    assert panel.depth.value == 3  # the controls' own values come back
    panel.depth.value = 2
    panel.base_channels.value = 8
    panel.upsampling.value = False
    arch = panel.architecture
    assert (arch.depth, arch.base_channels, arch.bilinear, arch.pretrained) == (2, 8, False, False)
    bundle = _new_bundle(widget)
    c = bundle.config
    assert (c.depth, c.base_channels, c.bilinear) == (2, 8, False)
    assert bundle.class_names == [s.name for s in widget.session.classes]

    # Checking again shows the nuclei model's shape; unchecking restores the choices.
    panel.pretrained.value = True
    assert (panel.depth.value, panel.base_channels.value, panel.upsampling.value) == START_SHAPE
    panel.pretrained.value = False
    assert (panel.depth.value, panel.base_channels.value, panel.upsampling.value) == (2, 8, False)


def test_a_missing_start_model_gives_a_fresh_model(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(defaults, "START_MODEL", tmp_path / "gone.pt")
    with caplog.at_level(logging.INFO, logger="napari_unet"):
        bundle = start_bundle(3)
    assert bundle.config.depth == 4 and bundle.n_classes == 3
    start = load_bundle(SHIPPED)
    assert not torch.equal(bundle.state_dict[KEY].float(), start.state_dict[KEY].float())
    assert any("missing" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
