"""From images and annotations to training data: checked, normalised pairs split into
training and validation. The label conventions are in :mod:`.labels`, the normalisation
in :mod:`.normalise`, the patches cut from the pairs in :mod:`.sampling`. Only numpy here:
no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .channels import n_channels
from .errors import InputError
from .labels import IGNORE, annotation_classes, as_stack, check_labels_array
from .normalise import Normalisation


@dataclass
class Pair:
    """One image already normalised, (Z, Y, X) or with channels (Z, C, Y, X), with its
    target (Z, Y, X) (model classes, -1 ignored)."""

    image: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None = None


@dataclass
class TrainingData:
    """Training and validation pairs built from image / annotation pairs."""

    train: list[Pair]
    validation: list[Pair] = field(default_factory=list)
    n_classes: int = 2
    counts: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    n_channels: int = 1

    @property
    def annotated_fraction(self) -> float:
        """Annotated share of the pixels of the annotated training slices."""
        total = sum(p.target.size for p in self.train)
        return float(self.counts.sum()) / total if total else 0.0

    @classmethod
    def from_annotations(
        cls,
        images: Sequence[np.ndarray],
        annotations: Sequence[np.ndarray],
        *,
        normalisation: Normalisation | None = None,
        n_classes: int | None = None,
        weights: Sequence[np.ndarray | None] | None = None,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> TrainingData:
        """Check, normalise and split image / annotation pairs.

        ``images`` have one channel (2D or Z stacks) or several, as (Z, C, Y, X) (see
        :mod:`.channels`), all the same number;
        ``annotations`` follow the sparse convention (0 = ignore, 1 = background, ...);
        ``weights`` (optional, same shapes) scale the loss per pixel, e.g. for
        corrected slices. Raises :class:`InputError` with a sentence for the user when
        the pairs cannot teach anything.
        """
        if len(images) == 0:
            raise InputError("no image to train on")
        if len(images) != len(annotations):
            raise InputError("each image needs exactly one annotation image")
        norm = normalisation or Normalisation()
        stacks, targets, wstacks = [], [], []
        channels = {n_channels(img) for img in images}
        if len(channels) > 1:
            raise InputError(f"the images have different numbers of channels "
                             f"({', '.join(str(c) for c in sorted(channels))}); train on the "
                             "same channels of each")
        for i, (img, ann) in enumerate(zip(images, annotations)):
            label = f"image {i + 1}" if len(images) > 1 else "image"
            img = np.asarray(img)
            if img.ndim not in (2, 3, 4):
                raise InputError(
                    f"the {label} has shape {img.shape}; use a 2D image or a stack of 2D slices, "
                    "with its channels as (Z, C, Y, X)"
                )
            spatial = img.shape if img.ndim < 4 else (img.shape[0], *img.shape[2:])
            if img.ndim == 4 and img.shape[0] == 1 and np.ndim(ann) == 2:
                spatial = spatial[1:]  # one slice of channels, annotated in 2D
            if np.shape(ann) != spatial:
                raise InputError(
                    f"the annotations of the {label} have shape {np.shape(ann)} but the image has "
                    f"shape {spatial}"
                    + (f" (with {img.shape[1]} channels)" if img.ndim == 4 else "")
                    + "; they must match"
                )
            ann = check_labels_array(ann, "annotations")
            if img.size == 0:
                raise InputError(f"the {label} is empty")
            if not np.issubdtype(img.dtype, np.number) and img.dtype != np.bool_:
                raise InputError(f"the {label} has type {img.dtype}, not numbers")
            stacks.append(norm.apply(img if img.ndim == 4 else as_stack(img)))
            target = as_stack(ann).astype(np.int16) - 1  # 0 -> -1 (ignore), 1 -> 0 (bg), ...
            targets.append(target)
            w = None if weights is None or weights[i] is None else as_stack(weights[i])
            wstacks.append(None if w is None else w.astype(np.float32))
        k = annotation_classes([t + 1 for t in targets])
        if n_classes is not None:
            if k > n_classes:
                raise InputError(
                    f"the annotations use class {k} but the model has only {n_classes} "
                    "classes (1 = background); add the class to the model first"
                )
            k = n_classes
        counts = np.zeros(k, np.int64)
        for t in targets:
            c = np.bincount((t[t >= 0]).ravel().astype(np.int64), minlength=k)
            counts += c[:k]
        if counts.sum() == 0:
            raise InputError(
                "nothing is annotated yet: paint background (label 1) and at least one "
                "class (label 2 or more) on the image"
            )
        if np.count_nonzero(counts) < 2:
            only = int(np.flatnonzero(counts)[0]) + 1
            raise InputError(
                f"only one class is annotated (label {only}); paint at least two: background "
                "(label 1) and a class to find (label 2 or more)"
            )
        train, validation = _split(stacks, targets, wstacks, validation_fraction, seed)
        return cls(train=train, validation=validation, n_classes=k, counts=counts,
                   n_channels=channels.pop())


def _split(stacks, targets, weights, fraction, seed) -> tuple[list[Pair], list[Pair]]:
    """Hold out annotated slices (or, for one dense 2D image, a region) for validation."""
    rng = np.random.default_rng(seed)
    annotated = [(i, z) for i, t in enumerate(targets) for z in range(t.shape[0]) if (t[z] >= 0).any()]
    train_idx = {(i, z) for i, z in annotated}
    val_pairs: list[Pair] = []
    n_val = int(len(annotated) * fraction) if fraction > 0 else 0
    if len(annotated) >= 5 and n_val >= 1:
        picks = rng.choice(len(annotated), size=n_val, replace=False)
        for p in sorted(picks):
            i, z = annotated[p]
            train_idx.discard((i, z))
            val_pairs.append(Pair(stacks[i][z : z + 1], targets[i][z : z + 1]))
    train_pairs: list[Pair] = []
    for i, (s, t, w) in enumerate(zip(stacks, targets, weights)):
        zs = [z for z in range(t.shape[0]) if (i, z) in train_idx]
        if not zs:
            continue
        if len(zs) == t.shape[0]:
            train_pairs.append(Pair(s, t, w))
        else:
            train_pairs.append(Pair(s[zs], t[zs], None if w is None else w[zs]))
    if not val_pairs and fraction > 0 and len(annotated) == 1:
        # One dense slice: hold out its bottom strip when it is densely annotated.
        pair = train_pairs[0]
        t = pair.target
        h = t.shape[1]
        strip = max(int(h * fraction), 1)
        if h >= 128 and (t >= 0).mean() > 0.9:
            val_pairs.append(Pair(pair.image[..., h - strip :, :], t[:, h - strip :]))
            t = t.copy()
            t[:, h - strip :] = IGNORE
            train_pairs[0] = Pair(pair.image, t, pair.weight)
    return train_pairs, val_pairs
