"""Planning a run (napari_unet.core.train.plan): the one function behind CLI, GUI and benchmarks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_unet.core.config import START_MODEL, TrainOptions
from napari_unet.core.errors import InputError
from napari_unet.core.labels import to_annotations
from napari_unet.core.models.checkpoint import load_bundle
from napari_unet.core.train import plan as plan_module
from napari_unet.core.train.plan import plan_training
from napari_unet.core.train.trainer import Trainer

KEY = "inc.double_conv.0.weight"


def test_strokes_start_from_the_shipped_model(blob_data):
    image, labels = blob_data
    ann = to_annotations(labels > 0, "semantic")
    plan = plan_training([image], [ann], TrainOptions(iterations=1, device="cpu"))
    shipped = load_bundle(START_MODEL)
    assert plan.bundle.config == shipped.config
    assert torch.equal(plan.bundle.state_dict[KEY], shipped.state_dict[KEY])
    assert plan.config.edge_weight > 0 and plan.config.iterations == 1


def test_dense_labels_start_from_seeded_weights(blob_data):
    image, labels = blob_data
    ann = to_annotations(labels, "instance")
    options = TrainOptions(labels_kind="instance", seed=3, device="cpu")
    a = plan_training([image], [ann], options)
    b = plan_training([image], [ann], options)
    assert a.bundle.n_classes == 3 and a.bundle.label_kind == "instance"
    assert torch.equal(a.bundle.state_dict[KEY], b.bundle.state_dict[KEY])
    c = plan_training([image], [ann], TrainOptions(labels_kind="instance", seed=4))
    assert not torch.equal(a.bundle.state_dict[KEY], c.bundle.state_dict[KEY])


def test_border_weights_use_the_objects(blob_data):
    image, labels = blob_data
    ann = to_annotations(labels, "instance")
    options = TrainOptions(labels_kind="instance", border_weights=True, device="cpu")
    plain = plan_training([image], [ann], TrainOptions(labels_kind="instance"))
    weighted = plan_training([image], [ann], options, objects=[labels])
    assert all(p.weight is None for p in plain.data.train)
    weights = np.concatenate([p.weight.ravel() for p in weighted.data.train])
    assert weights.min() >= 1 and weights.max() > 2
    doubled = plan_training([image], [ann], options, objects=[labels],
                            weights=[np.full(image.shape, 2.0, np.float32)])
    assert np.allclose(doubled.data.train[0].weight, 2 * weighted.data.train[0].weight)


def test_resuming_keeps_the_model_and_its_normalisation(blob_data):
    image, labels = blob_data
    ann = to_annotations(labels > 0, "semantic")
    first = plan_training([image], [ann], TrainOptions(labels_kind="semantic", iterations=2,
                                                       device="cpu", start_model="none",
                                                       depth=2, base_channels=4))
    trainer = Trainer(first.bundle, first.data, first.config)
    list(trainer.fit())
    trained = trainer.bundle()
    again = plan_training([image], [ann], TrainOptions(labels_kind="semantic"),
                          resume=trained, class_names=["bg", "blob", "other"],
                          class_colors=["#000000", "#ff0000", "#00ff00"])
    assert again.bundle.iterations == 2
    assert again.bundle.normalisation == trained.normalisation
    assert again.bundle.n_classes == 3 and again.bundle.class_names == ["bg", "blob", "other"]


def test_a_missing_start_model_is_a_sentence(blob_data, monkeypatch, tmp_path):
    image, labels = blob_data
    monkeypatch.setattr(plan_module, "START_MODEL", tmp_path / "gone.pt")
    with pytest.raises(InputError, match="starting model is missing"):
        plan_training([image], [to_annotations(labels > 0, "semantic")], TrainOptions())
