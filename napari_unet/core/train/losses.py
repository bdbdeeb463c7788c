"""The terms of the training loss, each a function of tensors on one device.

* :func:`masked_loss`: cross-entropy (and optional soft Dice) on annotated pixels only;
* :func:`edge_loss`: a pairwise term that puts label edges on image edges where nothing
  is annotated (for painted strokes);
* :func:`anchor_loss`: keeps unannotated pixels near a reference model's prediction.

None of them reads a value back from the device, so a GPU is never made to wait.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def masked_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None, dice_weight: float
) -> torch.Tensor:
    """Cross-entropy ignoring unannotated pixels (-1), plus optional soft Dice.

    Nothing here reads a value back from the device, so a GPU is never made to wait:
    a batch without annotated pixels gives a loss of 0 by the clamped denominator.
    """
    valid = target >= 0
    ce = F.cross_entropy(logits.float(), target.clamp(min=0), reduction="none")
    w = valid.float() if weights is None else valid.float() * weights
    loss = (ce * w).sum() / w.sum().clamp(min=1e-6)
    if dice_weight > 0:
        probs = torch.softmax(logits.float(), dim=1)
        onehot = F.one_hot(target.clamp(min=0), logits.shape[1]).movedim(-1, 1).float()
        m = valid.unsqueeze(1).float()
        axes = (0, *range(2, logits.ndim))  # all but the classes: 2D or 3D
        inter = (probs * onehot * m).sum(dim=axes)
        denom = ((probs + onehot) * m).sum(dim=axes)
        present = onehot.mul(m).sum(dim=axes) > 0
        dice = (2 * inter + 1.0) / (denom + 1.0)
        n_present = present.sum().clamp(min=1)
        loss = loss + dice_weight * ((1 - dice) * present).sum() / n_present
    return loss


def edge_loss(logits: torch.Tensor, image: torch.Tensor, sigma: float = 0.1,
              radius: int = 3, free: torch.Tensor | None = None) -> torch.Tensor:
    """Pairwise (CRF-like) loss: neighbours of similar intensity should share a label.

    For every pixel pair within ``radius``, the probability that their labels differ is
    weighed by a Gaussian of their intensity difference (``sigma``, normalised units) and
    of their distance, so changing label costs little only across an image edge (the
    regularised losses of Tang et al., ECCV 2018, and the gated CRF loss of Obukhov et
    al., 2019, for scribble supervision). With strokes, this moves the object outlines
    from the middle of the unpainted band onto the intensity edge. With ``free`` (B, H, W,
    True where nothing is annotated) only pairs with an unannotated pixel count: where
    both are annotated the annotation decides, so densely corrected slices are learnt as
    painted.

    Volumes (B, C, Z, Y, X) get the term within each xy slice (z folded into the batch):
    strokes are painted on slices, and the pairs across z would cost as much again.
    """
    if logits.ndim == 5:
        def fold(t: torch.Tensor) -> torch.Tensor:
            return t.movedim(2, 1).reshape(-1, t.shape[1], *t.shape[-2:])

        flat_free = None if free is None else free.reshape(-1, *free.shape[-2:])
        return edge_loss(fold(logits), fold(image), sigma, radius, flat_free)
    probs = torch.softmax(logits.float(), dim=1)
    img = image.float()
    _, _, h, w = probs.shape
    open_ = None if free is None else free.float().unsqueeze(1)
    total = probs.new_zeros(())
    inv_i = -0.5 / sigma**2
    inv_d = -0.5 / max(radius / 2, 1) ** 2
    for dy in range(radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy == 0 and dx <= 0) or dy * dy + dx * dx > radius * radius:
                continue
            xa = slice(max(-dx, 0), w - max(dx, 0))
            xb = slice(max(dx, 0), w + min(dx, 0))
            pa, pb = probs[:, :, : h - dy, xa], probs[:, :, dy:, xb]
            ia, ib = img[:, :, : h - dy, xa], img[:, :, dy:, xb]
            # Several channels: the mean squared difference over the channels, so an edge
            # in any one of them counts.
            diff = (ia - ib).square().mean(dim=1, keepdim=True)
            k = torch.exp(diff * inv_i) * math.exp((dy * dy + dx * dx) * inv_d)
            differ = 1 - (pa * pb).sum(dim=1, keepdim=True)
            if open_ is not None:  # 1 unless both pixels of the pair are annotated
                fa, fb = open_[:, :, : h - dy, xa], open_[:, :, dy:, xb]
                k = k * (fa + fb - fa * fb)
            total = total + (k * differ).sum()
    return total / probs[:, :1].numel()


def anchor_loss(logits: torch.Tensor, reference: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """KL divergence from the reference model's prediction (its ``reference`` logits) to
    this one, averaged over the unannotated pixels (``free``, (B, H, W))."""
    target = torch.softmax(reference.float(), dim=1)
    mask = free.unsqueeze(1).float()
    logp = torch.log_softmax(logits.float(), dim=1)
    kl = (target * (torch.log(target.clamp(min=1e-6)) - logp) * mask).sum()
    return kl / mask.sum().clamp(min=1.0)
