"""Loss terms (napari_unet.core.train.losses)."""

from __future__ import annotations

import numpy as np
import torch

from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.data import TrainingData
from napari_unet.core.train.losses import edge_loss, masked_loss
from napari_unet.core.train.trainer import TrainConfig, Trainer
from tests.conftest import blobs
from tests.core.kit import TINY


def test_masked_loss_ignores_unannotated_pixels():
    logits = torch.randn(2, 3, 8, 8)
    target = torch.randint(0, 3, (2, 8, 8))
    masked = target.clone()
    masked[:, :4] = -1
    garbage = target.clone()
    garbage[:, :4] = (target[:, :4] + 1) % 3
    garbage_masked = garbage.clone()
    garbage_masked[:, :4] = -1
    a = masked_loss(logits, masked, None, 0.5)
    b = masked_loss(logits, garbage_masked, None, 0.5)
    assert torch.allclose(a, b)
    assert not torch.allclose(a, masked_loss(logits, garbage, None, 0.5))
    weights = torch.ones(2, 8, 8)
    assert torch.allclose(masked_loss(logits, masked, weights, 0.0),
                          masked_loss(logits, masked, None, 0.0))
    nothing = torch.full_like(target, -1)  # a patch without annotated pixels teaches nothing
    leaf = logits.clone().requires_grad_(True)
    empty = masked_loss(leaf, nothing, None, 0.5)
    empty.backward()
    assert empty.item() == 0 and torch.all(leaf.grad == 0)


def test_edge_loss_is_cheap_along_image_edges_and_dear_across_flat_regions():
    image = torch.zeros(1, 1, 48, 48)
    image[..., 12:36, 12:36] = 1.0
    inside = image[0, 0] > 0
    on_edges = torch.stack([~inside, inside]).float()[None] * 20 - 10
    wider = torch.zeros(48, 48, dtype=torch.bool)
    wider[8:40, 8:40] = True  # the outline crosses flat background
    across = torch.stack([~wider, wider]).float()[None] * 20 - 10
    assert edge_loss(on_edges, image) < 0.05 * edge_loss(across, image)
    logits = across.clone().requires_grad_(True)
    edge_loss(logits, image).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    # pairs of annotated pixels are left to the annotation
    annotated = torch.zeros(1, 48, 48, dtype=torch.bool)
    assert edge_loss(across, image, free=annotated) == 0
    assert torch.isclose(edge_loss(across, image, free=~annotated), edge_loss(across, image))
    half = annotated.clone()
    half[:, :, 24:] = True
    assert 0 < edge_loss(across, image, free=half) < edge_loss(across, image)


def test_edge_loss_moves_outlines_from_the_unpainted_band_onto_the_edges(rng):
    """Strokes inside the objects and background far from them leave a band in which
    cross-entropy alone cannot place the outline; the edge loss puts it on the edge."""
    from scipy import ndimage as ndi

    image, labels = blobs(rng, shape=(4, 64, 64), n=5, radius=8)
    fg = labels > 0
    ann = np.zeros(labels.shape, np.uint8)
    ann[ndi.binary_erosion(fg, iterations=4, structure=np.ones((1, 3, 3)))] = 2
    ann[~ndi.binary_dilation(fg, iterations=6, structure=np.ones((1, 3, 3)))] = 1
    td = TrainingData.from_annotations([image], [ann])
    errors = []
    for weight in (0.0, 1.0):
        cfg = TrainConfig(iterations=80, batch_size=4, patch_size=32, learning_rate=1e-2,
                          edge_weight=weight, seed=1)
        trainer = Trainer(ModelBundle.new(TINY, seed=1), td, cfg)
        list(trainer.fit())
        pred = Predictor(trainer.bundle()).predict(image).labels > 0
        errors.append(np.count_nonzero(pred != fg))
    assert errors[1] < 0.7 * errors[0], errors


def test_weights_scale_each_pixels_share_of_the_loss():
    """A loss that ignored the weights would fail both checks."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6)
    target = torch.randint(0, 3, (2, 6, 6))
    target[0, 0] = -1  # unannotated: weighted or not, it never counts
    weights = torch.ones(2, 6, 6)
    weights[1] = 3.0
    weights[0, 0] = 100.0
    ce = F.cross_entropy(logits, target.clamp(min=0), reduction="none")
    w = weights * (target >= 0)
    expected = (ce * w).sum() / w.sum()
    loss = masked_loss(logits, target, weights, 0.0)
    assert torch.allclose(loss, expected)
    assert not torch.allclose(loss, masked_loss(logits, target, None, 0.0))
    leaf = logits.clone().requires_grad_(True)
    masked_loss(leaf, target, weights, 0.0).backward()
    grad = leaf.grad.abs().sum(1)
    assert torch.all(grad[0, 0] == 0)
    assert grad[1].mean() > 2 * grad[0, 1:].mean()  # the 3x pixels pull harder
