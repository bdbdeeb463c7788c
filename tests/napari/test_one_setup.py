"""The GUI and the command line train with the same settings for the same inputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from napari_unet._napari.jobs import TrainJob
from napari_unet._napari.training import build_request
from napari_unet.cli import build_parser, train_options
from napari_unet.core.config import TrainOptions, defaults_for
from napari_unet.core.errors import InputError
from napari_unet.core.train.plan import plan_training

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def _gui_trainer(widget):
    """The trainer a press on Train builds (as the worker builds it)."""
    request = build_request(widget.session, widget.train.settings.every_image,
                            options=widget.train.options())
    return TrainJob(request)._build()


def _cli_plan(viewer, argv: list[str]):
    args = build_parser().parse_args(
        ["train", "--image", "x.tif", "--labels", "y.tif", "--out", "m.pt", *argv])
    image = np.asarray(viewer.layers["nuclei"].data)
    annotations = np.asarray(viewer.layers["nuclei annotations"].data)
    return plan_training([image], [annotations], train_options(args))


def _same(gui_trainer, cli_plan) -> None:
    # The GUI leaves a core to the viewer; nothing else may differ.
    assert dataclasses.replace(gui_trainer.config, leave_core_free=False) == cli_plan.config
    assert gui_trainer.config.leave_core_free
    gui_bundle = gui_trainer.bundle()
    assert gui_bundle.config == cli_plan.bundle.config
    assert gui_bundle.label_kind == cli_plan.bundle.label_kind == "annotation"
    key = "inc.double_conv.0.weight"
    assert np.array_equal(gui_bundle.state_dict[key].numpy(),
                          cli_plan.bundle.state_dict[key].numpy())


@pytest.fixture
def demo(make_napari_viewer):
    from napari_unet._napari.demo import open_demo

    return open_demo(make_napari_viewer())


def test_defaults_are_the_same(demo):
    viewer, widget = demo
    seconds = widget.train.settings.seconds
    trainer = _gui_trainer(widget)
    _same(trainer, _cli_plan(viewer, ["--seconds", str(seconds)]))
    assert trainer.config.batch_size == defaults_for("annotation", "cpu").train.batch_size


def test_chosen_settings_are_the_same(demo):
    viewer, widget = demo
    form, model = widget.train.form, widget.train.model
    form.budget.value = "iterations"
    form.iterations.value = 7
    form.batch_size.value = 4
    form.patch_size.value = 64
    form.learning_rate.value = 0.01
    form.elastic_sigma.value = 3.0
    form.snap_to_edges.value = False
    form.separate_touching.value = True
    model.pretrained.value = False
    model.depth.value = 2
    model.base_channels.value = 8
    model.upsampling.value = False
    cli = _cli_plan(viewer, [
        "--iterations", "7", "--batch-size", "4", "--patch-size", "64",
        "--learning-rate", "0.01", "--edge-weight", "0", "--border-weights",
        "--start-model", "none", "--depth", "2", "--base-channels", "8", "--transposed",
        "--elastic-sigma", "3",
    ])
    gui = _gui_trainer(widget)
    _same(gui, cli)
    assert gui.config.edge_weight == 0 and gui.config.patch_size == 64
    assert gui.config.augment.elastic_sigma == 3.0
    # The border weights reached both: gaps between painted objects weigh more.
    for data in (gui.data, cli.data):
        assert all(p.weight is not None and p.weight.max() > 1 for p in data.train)


def test_invalid_settings_are_refused_before_the_worker(demo, notifications):
    _viewer, widget = demo
    settings = widget.train.settings
    settings.patch_size = 24  # not a multiple of 16
    widget.train.form.settings = settings
    assert widget.train.start_training() is None
    assert not widget.train.controller.running
    assert any("patch size" in m for m in notifications)
    with pytest.raises(InputError, match="depth"):
        TrainOptions(depth=9)
