"""Training data of volumes: normalised (C, Z, Y, X) volumes with their sparse targets,
and 3D patches cut around the annotated voxels (:class:`VolumeSampler`), so strokes on
a few slices of a deep volume are seen at every step. Only numpy here: no torch.

The 2D counterparts are :mod:`.data` and :mod:`.sampling`; the label conventions are
the same (annotations 0 = not annotated, 1 = background, 2.. classes; targets -1 =
ignored, 0.. model classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.labels import IGNORE, check_labels_array
from napari_unet.core.normalise import Normalisation
from napari_unet.core.train.data import AnnotatedShare
from napari_unet.core.train.sampling import FOCUS_SHARE, Centres
from napari_unet.core.voxels import VoxelSize

#: Volumes are normalised as a whole (one pair of percentiles per channel), not slice by
#: slice: a dim slice at the end of a stack stays dim, as the model sees it in 3D.
VOLUME_NORMALISATION = Normalisation(per_slice=False)


@dataclass
class VolumePair:
    """One normalised volume (C, Z, Y, X) float32, its target (Z, Y, X) int16 (-1 =
    ignored) and optional loss weights (Z, Y, X)."""

    image: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None = None


@dataclass
class VolumeData(AnnotatedShare):
    """What a :class:`~.volume.VolumeTrainer` trains on (nothing held out: strokes on a
    few slices are too few to spare)."""

    train: list[VolumePair]
    voxel_size: VoxelSize | None = None
    validation: list = field(default_factory=list)
    n_classes: int = 2
    counts: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    n_channels: int = 1

    def annotated_slices(self) -> list[list[int]]:
        """Per volume, the z of the slices that hold annotations."""
        return [np.flatnonzero((p.target >= 0).any(axis=(1, 2))).tolist() for p in self.train]

    @classmethod
    def from_annotations(cls, volumes: Sequence[np.ndarray], annotations: Sequence[np.ndarray],
                         *, voxel_size: VoxelSize | None = None,
                         normalisation: Normalisation | None = None,
                         weights: Sequence[np.ndarray | None] | None = None) -> VolumeData:
        """Check and normalise volumes (Z, Y, X), or (Z, C, Y, X) with channels, and their
        sparse annotations (Z, Y, X); :class:`InputError` with a sentence when they cannot
        teach anything."""
        if len(volumes) == 0:
            raise InputError("no volume to train on")
        if len(volumes) != len(annotations):
            raise InputError("each volume needs exactly one annotation volume")
        norm = normalisation or VOLUME_NORMALISATION
        weights = list(weights) if weights is not None else [None] * len(volumes)
        pairs, counts, channels = [], np.zeros(1, np.int64), set()
        for i, (vol, ann, w) in enumerate(zip(volumes, annotations, weights)):
            label = f"volume {i + 1}" if len(volumes) > 1 else "volume"
            vol = np.asarray(vol)
            if vol.ndim not in (3, 4):
                raise InputError(f"the {label} has shape {vol.shape}; a 3D model trains on "
                                 "volumes (Z, Y, X), with channels as (Z, C, Y, X)")
            spatial = vol.shape if vol.ndim == 3 else (vol.shape[0], *vol.shape[2:])
            if np.shape(ann) != spatial:
                raise InputError(f"the annotations of the {label} have shape {np.shape(ann)} "
                                 f"but the volume has shape {spatial}; they must match")
            if not np.issubdtype(vol.dtype, np.number) and vol.dtype != np.bool_:
                raise InputError(f"the {label} has type {vol.dtype}, not numbers")
            ann = check_labels_array(np.asarray(ann), "annotations")
            channels.add(1 if vol.ndim == 3 else vol.shape[1])
            image = norm.apply(vol)
            image = image[None] if image.ndim == 3 else np.moveaxis(image, 1, 0)
            target = ann.astype(np.int16) - 1
            c = np.bincount(ann.ravel().astype(np.int64))
            if c.size > counts.size:
                counts = np.pad(counts, (0, c.size - counts.size))
            counts[: c.size] += c
            weight = None if w is None else np.asarray(w, np.float32)
            pairs.append(VolumePair(np.ascontiguousarray(image, np.float32), target, weight))
        if len(channels) > 1:
            raise InputError("the volumes have different numbers of channels; train on the "
                             "same channels of each")
        counts = counts[1:]
        k = max(int(np.flatnonzero(counts).max()) + 1 if counts.any() else 0, 2)
        if not counts.any():
            raise InputError("nothing is annotated yet: paint background (label 1) and at "
                             "least one class (label 2 or more) on some slices")
        if np.count_nonzero(counts) < 2:
            only = int(np.flatnonzero(counts)[0]) + 1
            raise InputError(f"only one class is annotated (label {only}); paint at least "
                             "two: background (label 1) and a class to find (label 2 or more)")
        counts = np.pad(counts, (0, max(0, k - counts.size)))[:k]
        return cls(train=pairs, voxel_size=voxel_size, n_classes=k, counts=counts,
                   n_channels=channels.pop())


class VolumeSampler:
    """3D patches (z, y, x) centred near annotated voxels, balanced across classes, as
    :class:`~.sampling.PatchSampler` does in 2D: the centre class drawn uniformly
    (``balance`` 1) or as often as annotated (0), the centre jittered by up to a quarter
    of the patch per axis, voxels of loss weight at least ``FOCUS_WEIGHT`` centring
    ``FOCUS_SHARE`` of the patches (the same :class:`~.sampling.Centres`); volumes
    smaller than a patch padded by reflection (the padding not annotated)."""

    dims = 3

    def __init__(self, pairs: Sequence[VolumePair], n_classes: int,
                 patch: tuple[int, int, int], *, seed: int = 0, balance: float = 1.0,
                 max_points_per_class: int = 500_000):
        if not pairs:
            raise InputError("no annotated volume left for training")
        self.patch = tuple(int(p) for p in patch)
        self.rng = np.random.default_rng(seed)
        self.pairs = [self._pad(p) for p in pairs]
        self.n_classes = n_classes
        centres = Centres.of(self.pairs, n_classes, max_points_per_class, self.rng, balance)
        self.points, self.classes, self.class_p = centres.points, centres.classes, centres.class_p
        self.focus = centres.focus
        self.has_weights = any(p.weight is not None for p in self.pairs)

    def _pad(self, pair: VolumePair) -> VolumePair:
        pads = [max(0, p - n) for p, n in zip(self.patch, pair.target.shape)]
        if not any(pads):
            return pair
        pad = [(p // 2, p - p // 2) for p in pads]
        image = np.pad(pair.image, [(0, 0), *pad], mode="symmetric")
        target = np.pad(pair.target, pad, constant_values=IGNORE)
        weight = None if pair.weight is None else np.pad(pair.weight, pad, constant_values=1.0)
        return VolumePair(image, target, weight)

    def draw(self, batch_size: int) -> list[tuple[int, int, int, int]]:
        """Where the next batch's patches lie: (pair, z0, y0, x0) of each."""
        patch = np.array(self.patch)
        cls = self.rng.choice(self.classes, size=batch_size, p=self.class_p)
        jitter = np.stack([self.rng.integers(-(p // 4), p // 4 + 1, size=batch_size)
                           for p in self.patch], axis=1)
        focus = (self.rng.random(batch_size) < FOCUS_SHARE if self.focus is not None
                 else np.zeros(batch_size, bool))
        corners = []
        for b in range(batch_size):
            pts = self.focus if focus[b] else self.points[cls[b]]
            i, *centre = pts[self.rng.integers(len(pts))]
            shape = np.array(self.pairs[i].target.shape)
            start = np.clip(np.array(centre) + jitter[b] - patch // 2, 0, shape - patch)
            corners.append((int(i), *(int(s) for s in start)))
        return corners

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A batch: images (B, C, Z, Y, X) float32, targets (B, Z, Y, X) int64, weights
        (B, Z, Y, X) or None."""
        pz, py, px = self.patch
        c = self.pairs[0].image.shape[0]
        x = np.empty((batch_size, c, pz, py, px), np.float32)
        y = np.empty((batch_size, pz, py, px), np.int64)
        wts = np.ones((batch_size, pz, py, px), np.float32) if self.has_weights else None
        for b, (i, z0, y0, x0) in enumerate(self.draw(batch_size)):
            pair = self.pairs[i]
            region = (slice(z0, z0 + pz), slice(y0, y0 + py), slice(x0, x0 + px))
            x[b] = pair.image[(slice(None), *region)]
            y[b] = pair.target[region]
            if wts is not None and pair.weight is not None:
                wts[b] = pair.weight[region]
        return x, y, wts
