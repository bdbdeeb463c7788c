"""Settings records and defaults (napari_unet.core.config): torch-free and validated."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from napari_unet.core.config import (
    ANCHOR_WEIGHT,
    EDGE_WEIGHT,
    START_ARCHITECTURE,
    TrainConfig,
    TrainOptions,
    defaults_for,
)
from napari_unet.core.errors import InputError


def test_building_settings_imports_no_torch():
    code = ("import sys; from napari_unet.core.config import TrainOptions; "
            "TrainOptions(seconds=5).train_config('cuda'); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_defaults_per_labels_kind_and_device():
    cpu, gpu = defaults_for("annotation", "cpu"), defaults_for("annotation", "cuda")
    assert (cpu.train.batch_size, cpu.train.patch_size) == (8, 128)
    assert (gpu.train.batch_size, gpu.train.patch_size) == (16, 256)
    assert gpu.base_channels > cpu.base_channels
    assert cpu.train.edge_weight == EDGE_WEIGHT and cpu.train.anchor_weight == ANCHOR_WEIGHT
    dense = defaults_for("instance", "cpu").train
    assert dense.edge_weight == 0 and dense.anchor_weight == 0
    with pytest.raises(InputError, match="kind of labels"):
        defaults_for("scribbles")


def test_options_over_defaults():
    options = TrainOptions(labels_kind="semantic", batch_size=3, elastic_sigma=0.0, seed=7,
                           iterations=10)
    config = options.train_config("cuda")
    gpu = defaults_for("semantic", "cuda").train
    assert config == dataclasses.replace(gpu, batch_size=3, seed=7, iterations=10,
                                         leave_core_free=False,
                                         augment=dataclasses.replace(gpu.augment,
                                                                     elastic_sigma=0.0))


def test_zoom_option_reaches_the_augmentation():
    assert TrainOptions(zoom=3.0).train_config("cpu").augment.zoom == 3.0
    default = defaults_for("annotation", "cpu").train.augment
    assert TrainOptions(elastic_sigma=2.0).train_config("cpu").augment == dataclasses.replace(
        default, elastic_sigma=2.0)
    with pytest.raises(InputError, match="zoom"):
        TrainOptions(zoom=0.9)


def test_intensity_option_reaches_the_augmentation():
    default = defaults_for("instance", "cpu").train.augment
    assert TrainOptions(labels_kind="instance", intensity=0.5).train_config("cpu").augment \
        == dataclasses.replace(default, intensity=0.5)
    assert TrainOptions(intensity=0.0).train_config("cpu").augment.intensity == 0.0
    for bad in (-0.1, 1.0):
        with pytest.raises(InputError, match="intensity augmentation"):
            TrainOptions(intensity=bad)


def test_architecture_of_new_models():
    strokes = TrainOptions()
    assert strokes.starts_from_nuclei
    assert strokes.architecture(3) == dataclasses.replace(START_ARCHITECTURE, n_classes=3)
    dense = TrainOptions(labels_kind="instance")
    assert not dense.starts_from_nuclei
    assert dense.architecture(3, "cuda").base_channels == defaults_for("instance",
                                                                      "cuda").base_channels
    shaped = TrainOptions(depth=2, bilinear=False)  # strokes, but a shape was chosen
    assert not shaped.starts_from_nuclei
    assert (shaped.architecture(2).depth, shaped.architecture(2).bilinear) == (2, False)


@pytest.mark.parametrize("bad, words", [
    ({"start_model": "nuclei", "depth": 3}, "fixes the architecture"),
    ({"depth": 0}, "depth"),
    ({"base_channels": 100000}, "base channels"),
    ({"batch_size": 0}, "batch size"),
    ({"patch_size": 40}, "patch size"),
    ({"learning_rate": -1.0}, "learning rate"),
    ({"iterations": 0}, "iterations"),
    ({"seconds": -5.0}, "time budget"),
    ({"elastic_sigma": -2.0}, "elastic"),
    ({"seed": -1}, "seed"),
    ({"seed": 10**20}, "seed"),
    ({"labels_kind": "masks"}, "kind of labels"),
    ({"start_model": "cellpose"}, "starting model"),
])
def test_impossible_options_are_refused_when_built(bad, words):
    with pytest.raises(InputError, match=words):
        TrainOptions(**bad)


def test_train_config_checks_itself():
    with pytest.raises(InputError, match="patch size"):
        TrainConfig(patch_size=8)


def test_the_records_alone_build_the_cpu_row_of_the_defaults_table():
    """``UNetConfig()``, ``TrainConfig()`` and ``AugmentConfig()`` on their own give what
    a CPU run gets by default, and the GPU row differs only where the table says."""
    from napari_unet.core.config import DEVICE_DEFAULTS, AugmentConfig, UNetConfig

    cpu = defaults_for("semantic", "cpu")
    assert (UNetConfig().base_channels, UNetConfig().depth) == (cpu.base_channels, cpu.depth)
    train = TrainConfig()
    assert (train.batch_size, train.patch_size, train.learning_rate) == (
        cpu.train.batch_size, cpu.train.patch_size, cpu.train.learning_rate)
    assert AugmentConfig().elastic_sigma == cpu.train.augment.elastic_sigma
    gpu, row = defaults_for("semantic", "cuda"), DEVICE_DEFAULTS["cuda"]
    assert (gpu.base_channels, gpu.train.batch_size, gpu.train.augment.elastic_sigma) == (
        row.base_channels, row.batch_size, row.elastic_sigma)
    assert defaults_for("semantic", "mps") == cpu


def test_the_help_texts_show_the_defaults_of_the_table():
    from napari_unet.cli import build_parser
    from napari_unet.core.config import (
        BLOCK_SIZE,
        CHUNK_SIZE,
        CPU,
        DEVICE_DEFAULTS,
        MIN_OBJECT_SIZE,
        VOLUME_BLOCK,
    )

    sub = build_parser()._subparsers._group_actions[0].choices
    train = " ".join(sub["train"].format_help().split())
    predict = " ".join(sub["predict"].format_help().split())
    gpu = DEVICE_DEFAULTS["cuda"]
    assert (f"default {CPU.elastic_sigma:g} on a CPU, {gpu.elastic_sigma:g} on a CUDA GPU"
            in train)
    assert f"default {CPU.base_channels} on a CPU, {gpu.base_channels} on a CUDA GPU" in train
    assert f"depth (default {CPU.depth})" in train
    for value in (BLOCK_SIZE, CHUNK_SIZE, MIN_OBJECT_SIZE):
        assert f"(default {value})" in predict
    args = sub["predict"].parse_args(["--model", "m.pt", "--image", "a.tif", "--out", "b.tif"])
    assert (args.chunk_size, args.min_size) == (CHUNK_SIZE, MIN_OBJECT_SIZE)
    # the block's default depends on the route: BLOCK_SIZE in 2D, VOLUME_BLOCK in 3D
    assert args.block_size is None
    assert f"default {','.join(map(str, VOLUME_BLOCK))}" in predict
