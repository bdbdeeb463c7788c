"""Training patches cut around annotated pixels, balanced across classes.
Only numpy here: no torch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.lazy import is_lazy
from napari_unet.core.labels import IGNORE
from napari_unet.core.train.data import Pair

#: Loss weight from which an annotated pixel is a centre of :data:`FOCUS_SHARE` of the
#: patches (see :class:`PatchSampler`).
FOCUS_WEIGHT = 1.5
FOCUS_SHARE = 0.1


class PatchSampler:
    """Square patches centred near annotated pixels, balanced across classes.

    Each patch is centred on an annotated pixel of a class drawn uniformly among the
    annotated classes (so a few strokes of a rare class are seen as often as the
    abundant background), shifted at random by up to a quarter of the patch. With
    ``balance`` below 1 the centre class is drawn in proportion to its annotated pixels
    that often (``balance`` 0: every annotated pixel equally likely), which keeps the
    model's prior right when every pixel is annotated. Images
    smaller than the patch are padded by reflection (the padding is not annotated).

    Annotated pixels that weigh at least :data:`FOCUS_WEIGHT` in the loss (accepted
    corrections, the gaps of border weights) centre :data:`FOCUS_SHARE` of the patches:
    a correction of a few dozen pixels among thousands of painted ones is then seen in
    the next few iterations, not once in hundreds.
    """

    def __init__(
        self,
        pairs: Sequence[Pair],
        n_classes: int,
        patch_size: int,
        *,
        seed: int = 0,
        max_points_per_class: int = 500_000,
        balance: float = 1.0,
    ):
        if not pairs:
            raise InputError("no annotated slice left for training")
        self.patch_size = int(patch_size)
        self.rng = np.random.default_rng(seed)
        self.pairs = [self._pad(p) for p in pairs]
        self.n_classes = n_classes
        centres = Centres.of(self.pairs, n_classes, max_points_per_class, self.rng, balance)
        self.points, self.classes, self.class_p = centres.points, centres.classes, centres.class_p
        self.focus = centres.focus
        self.has_weights = any(p.weight is not None for p in self.pairs)

    def _pad(self, pair: Pair) -> Pair:
        h, w = pair.image.shape[-2:]
        ph, pw = max(0, self.patch_size - h), max(0, self.patch_size - w)
        if not ph and not pw:
            return pair
        if is_lazy(pair.image) or is_lazy(pair.target):  # smaller than a patch: read it
            every = slice(None)
            n = pair.image.shape[0]
            pair = Pair(np.stack([pair.image[z, every, every] for z in range(n)]),
                        np.stack([pair.target[z, every, every] for z in range(n)]),
                        pair.weight)
        pad = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(pair.image, ((0, 0),) * (pair.image.ndim - 3) + pad, mode="symmetric")
        target = np.pad(pair.target, pad, constant_values=IGNORE)
        weight = None if pair.weight is None else np.pad(pair.weight, pad, constant_values=1.0)
        return Pair(image, target, weight)

    def draw(self, batch_size: int) -> list[tuple[int, int, int, int]]:
        """Where the next batch's patches lie: (pair, z, y0, x0) of each."""
        p = self.patch_size
        cls = self.rng.choice(self.classes, size=batch_size, p=self.class_p)
        jitter = self.rng.integers(-(p // 4), p // 4 + 1, size=(batch_size, 2))
        corners = []
        focus = (self.rng.random(batch_size) < FOCUS_SHARE if self.focus is not None
                 else np.zeros(batch_size, bool))
        for b in range(batch_size):
            pts = self.focus if focus[b] else self.points[cls[b]]
            i, z, cy, cx = pts[self.rng.integers(len(pts))]
            h, w = self.pairs[i].image.shape[-2:]
            y0 = int(np.clip(cy + jitter[b, 0] - p // 2, 0, h - p))
            x0 = int(np.clip(cx + jitter[b, 1] - p // 2, 0, w - p))
            corners.append((int(i), int(z), y0, x0))
        return corners

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A batch: images (B, C, P, P) float32, targets (B, P, P) int64, weights or None."""
        p = self.patch_size
        first = self.pairs[0].image
        x = np.empty((batch_size, first.shape[1] if first.ndim == 4 else 1, p, p), np.float32)
        y = np.empty((batch_size, p, p), np.int64)
        wts = np.ones((batch_size, p, p), np.float32) if self.has_weights else None
        for b, (i, z, y0, x0) in enumerate(self.draw(batch_size)):
            pair = self.pairs[i]
            x[b] = pair.image[z, ..., y0 : y0 + p, x0 : x0 + p]
            y[b] = pair.target[z, y0 : y0 + p, x0 : x0 + p]
            if wts is not None and pair.weight is not None:
                wts[b] = pair.weight[z, y0 : y0 + p, x0 : x0 + p]
        return x, y, wts


@dataclass
class Centres:
    """Where patches are centred, of 2D slices and of volumes alike: per class the
    annotated pixels or voxels ``points`` (n, 4) of (pair, z, y, x), thinned at random
    to at most ``cap``; the ``classes`` annotated and how often each centres a patch
    (``class_p``: uniform at ``balance`` 1, as often as annotated at 0); the ``focus``
    points (weight at least :data:`FOCUS_WEIGHT`, at most ``cap``) or None."""

    points: list[np.ndarray]
    classes: list[int]
    class_p: np.ndarray
    focus: np.ndarray | None

    @classmethod
    def of(cls, pairs: Sequence, n_classes: int, cap: int, rng: np.random.Generator,
           balance: float = 1.0) -> Centres:
        """Of ``pairs`` (each with a ``target`` (Z, Y, X) of classes, -1 ignored, and a
        ``weight`` of that shape or None): 2D slices (:class:`~.data.Pair`) or volumes
        (:class:`~.volume_data.VolumePair`)."""
        points: list[np.ndarray] = []
        annotated = np.zeros(n_classes, np.float64)  # pixels per class, before thinning
        found = _class_points(pairs, n_classes, cap, rng)
        for c in range(n_classes):
            arr, annotated[c] = found[c]
            if len(arr) > cap:
                arr = arr[rng.choice(len(arr), cap, replace=False)]
            points.append(arr.astype(np.int32))
        classes = [c for c in range(n_classes) if len(points[c])]
        counts = annotated[classes]
        class_p = balance / len(classes) + (1 - balance) * counts / counts.sum()
        focus = []
        for i, p in enumerate(pairs):
            if p.weight is not None:
                z, y, x = np.nonzero((p.weight >= FOCUS_WEIGHT) & (p.target >= 0))
                if z.size:
                    focus.append(np.stack([np.full_like(z, i), z, y, x], axis=1))
        kept = np.concatenate(focus).astype(np.int32) if focus else None
        if kept is not None and len(kept) > cap:
            kept = kept[rng.choice(len(kept), cap, replace=False)]
        return cls(points, classes, class_p, kept)


def _class_points(pairs: Sequence, n_classes: int, cap: int,
                  rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Per class: the (pair, z, y, x) of annotated pixels (thinned at random to about
    ``cap`` per slice, or per block of a lazy target) and how many there are. A target in
    memory is searched slice by slice; a lazy one block by block (:meth:`~.data.LazyTarget.blocks`), so
    only the annotations are read, never the image."""
    found: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    totals = [0] * n_classes
    for i, pair in enumerate(pairs):
        if is_lazy(pair.target):
            blocks = pair.target.blocks()
        else:
            blocks = ((z, 0, 0, pair.target[z]) for z in range(pair.target.shape[0]))
        for z, y0, x0, block in blocks:
            for c in range(n_classes):
                y, x = np.nonzero(block == c)
                if not y.size:
                    continue
                totals[c] += int(y.size)
                if y.size > cap:
                    keep = rng.choice(y.size, cap, replace=False)
                    y, x = y[keep], x[keep]
                found[c].append(np.stack([np.full_like(y, i), np.full_like(y, z), y + y0,
                                          x + x0], axis=1))
    return [(np.concatenate(f) if f else np.zeros((0, 4), np.int64), totals[c])
            for c, f in enumerate(found)]
