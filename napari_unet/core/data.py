"""From annotations to training patches.

Label conventions (DESIGN.md), kept everywhere:

* annotations (sparse): 0 = not annotated (ignored by the loss), 1 = background,
  2..K = foreground classes;
* model classes and predictions: 0 = background, 1..K-1 = foreground, so
  ``annotation = prediction + 1``;
* dense label images from files are turned into annotations by :func:`to_annotations`.

Training targets are model classes with ``IGNORE`` (-1) where nothing is annotated.
Only numpy and scikit-image here: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .errors import InputError

LabelKind = Literal["annotation", "semantic", "instance"]
LABEL_KINDS: tuple[str, ...] = ("annotation", "semantic", "instance")
IGNORE = -1
#: Class names of a model trained on instance masks.
INSTANCE_CLASSES = ("background", "nucleus", "boundary")
#: napari-like default colours for classes (background first).
DEFAULT_COLORS = (
    "#000000", "#ff7f0e", "#1f77b4", "#2ca02c", "#d62728",
    "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf",
)


@dataclass(frozen=True)
class Normalisation:
    """Percentile normalisation, stored in the model so prediction does the same."""

    low: float = 1.0
    high: float = 99.8
    per_slice: bool = True

    def to_dict(self) -> dict:
        return {"low": self.low, "high": self.high, "per_slice": self.per_slice}

    def apply(self, image: np.ndarray) -> np.ndarray:
        """Map the ``low`` and ``high`` percentiles to 0 and 1 (float32, finite).

        ``image`` is (Y, X) or a stack (Z, Y, X); with ``per_slice`` every slice gets its
        own percentiles. NaN and infinity become 0 after normalisation.
        """
        image = np.asarray(image)
        if image.ndim == 3 and self.per_slice:
            return np.stack([self._one(s) for s in image])
        return self._one(image)

    def _one(self, image: np.ndarray) -> np.ndarray:
        return self.normalise(image, self.stats(image))

    def stats(self, image: np.ndarray) -> tuple[float, float] | None:
        """The offset and the scale that map the percentiles of ``image`` to 0 and 1,
        from at most about two million of its pixels (no copy of the whole image);
        ``None`` when it has no finite value."""
        image = np.asarray(image)
        if image.size == 0:
            return None
        step = max(1, image.size // 2_000_000)
        if image.flags.c_contiguous:
            sample = image.reshape(-1)[::step]  # a view
        else:  # a strided view: sample rows and columns without copying the image
            k = max(1, int(round(step ** (1 / image.ndim))))
            sample = image[(slice(None, None, k),) * image.ndim].ravel()
        if sample.dtype.kind == "b":
            sample = sample.astype(np.uint8)
        elif sample.dtype.kind in "fc":
            sample = sample.astype(np.float32, copy=False)
            finite = np.isfinite(sample)
            if not finite.all():
                if not finite.any():
                    return None
                sample = sample[finite]
        lo, hi = np.percentile(sample, [self.low, self.high])
        scale = float(hi - lo)
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0
        return float(lo), scale

    @staticmethod
    def normalise(image: np.ndarray, stats: tuple[float, float] | None) -> np.ndarray:
        """``(image - offset) / scale`` as float32 (one copy); NaN and infinity become 0."""
        image = np.asarray(image)
        x = image.astype(np.float32, copy=True)
        if stats is None:
            x[...] = 0
            return x
        lo, scale = stats
        x -= np.float32(lo)
        x /= np.float32(scale)
        if image.dtype.kind in "fc":  # NaN and infinity, a million pixels at a time
            flat = x.reshape(-1)
            for i in range(0, flat.size, 1 << 20):
                np.nan_to_num(flat[i : i + (1 << 20)], copy=False, nan=0.0, posinf=0.0,
                              neginf=0.0)
        return x


def as_stack(array: np.ndarray, what: str = "image") -> np.ndarray:
    """View a 2D image as a stack of one slice; accept (Z, Y, X) as it is."""
    array = np.asarray(array)
    if array.ndim == 2:
        return array[np.newaxis]
    if array.ndim == 3:
        return array
    raise InputError(
        f"the {what} has {array.ndim} dimensions (shape {array.shape}); napari-unet "
        "trains on 2D images or stacks of 2D slices (Z, Y, X) with one channel"
    )


def check_labels_array(labels: np.ndarray, what: str = "labels") -> np.ndarray:
    """Integer labels without negative values (whole-valued floats are accepted)."""
    labels = np.asarray(labels)
    if labels.dtype == np.bool_:
        return labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.issubdtype(labels.dtype, np.floating):
            raise InputError(f"the {what} have type {labels.dtype}; integer labels are needed")
        if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise InputError(f"the {what} are stored as floats with fractional or NaN values")
        labels = labels.astype(np.int64)
    if labels.size and labels.min() < 0:
        raise InputError(f"the {what} contain negative values (min {labels.min()})")
    return labels


def instance_to_classes(instances: np.ndarray) -> np.ndarray:
    """Instance mask (0 = background, 1..N objects) to annotations 1 / 2 / 3.

    1 = background, 2 = object interior, 3 = object boundary (inner boundary pixels,
    and every pixel where two objects touch), so that touching objects can be split.
    """
    from skimage.segmentation import find_boundaries

    stack = as_stack(instances, "instance labels")
    out = np.ones(stack.shape, dtype=np.uint8)
    for z, sl in enumerate(stack):
        fg = sl > 0
        boundary = find_boundaries(sl, mode="inner") & fg
        out[z][fg] = 2
        out[z][boundary] = 3
    return out.reshape(np.shape(instances))


def to_annotations(labels: np.ndarray, kind: LabelKind) -> np.ndarray:
    """Any supported label image as annotations (0 = ignore, 1 = background, 2.. classes)."""
    if kind not in LABEL_KINDS:
        raise InputError(f"unknown labels kind {kind!r}; use one of {', '.join(LABEL_KINDS)}")
    labels = check_labels_array(labels)
    if kind == "instance":
        return instance_to_classes(labels)
    top = int(labels.max()) if labels.size else 0
    if kind == "semantic":
        top += 1
    dtype = np.uint8 if top < 256 else np.uint16
    if top >= 64:
        raise InputError(
            f"the labels have {top} classes; for one label per object use --labels-kind instance"
        )
    out = labels.astype(dtype)
    return out + 1 if kind == "semantic" else out


def border_weights(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The U-Net paper's weight map: ``1 + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` on
    background pixels, ``d1`` and ``d2`` their distances to the nearest and second
    nearest object, so the thin gaps between touching objects weigh up to ``1 + w0``.

    ``instances`` is one label per object (0 = background), 2D or a stack; returns
    float32 weights of the same shape. Distances are computed in a window around each
    object, as far as the weight is still above 1 % of ``w0``.
    """
    from scipy.ndimage import distance_transform_edt, find_objects

    stack = as_stack(check_labels_array(instances, "instance labels"))
    out = np.ones(stack.shape, np.float32)
    reach = int(np.ceil(sigma * np.sqrt(2 * np.log(100.0))))
    from .metrics import sequential_ids

    for z, sl in enumerate(stack):
        if not sl.any():
            continue
        sl = sequential_ids(sl)  # find_objects lists every id up to the largest
        d1 = np.full(sl.shape, np.inf, np.float32)
        d2 = np.full(sl.shape, np.inf, np.float32)
        for i, box in enumerate(find_objects(sl), start=1):
            if box is None:
                continue
            win = tuple(slice(max(b.start - reach, 0), b.stop + reach) for b in box)
            dist = distance_transform_edt(sl[win] != i).astype(np.float32)
            a, b = d1[win], d2[win]
            d2[win] = np.minimum(b, np.maximum(a, dist))
            d1[win] = np.minimum(a, dist)
        gap = d1 + d2
        near = (sl == 0) & np.isfinite(gap)
        out[z][near] += w0 * np.exp(-(gap[near] ** 2) / (2 * sigma**2))
    return out.reshape(np.shape(instances))


def painted_objects(annotations: np.ndarray) -> np.ndarray:
    """Objects of painted annotations (0 = none, 1 = background, 2.. classes): each
    connected region of one foreground class, numbered 1..N per slice."""
    from skimage.measure import label as connected

    stack = as_stack(check_labels_array(annotations, "annotations"))
    out = np.zeros(stack.shape, np.int32)
    for z, sl in enumerate(stack):
        offset = 0
        for c in np.unique(sl[sl >= 2]):
            comp = connected(sl == c).astype(np.int32)
            out[z][comp > 0] = comp[comp > 0] + offset
            offset += int(comp.max())
    return out.reshape(np.shape(annotations))


def annotation_classes(annotations: Sequence[np.ndarray]) -> int:
    """Number of model classes K (annotations 1..K) that the annotations ask for."""
    top = max((int(a.max()) if a.size else 0) for a in annotations)
    return max(top, 2)


@dataclass
class Pair:
    """One image (Z, Y, X) already normalised, with its target (model classes, -1 ignored)."""

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
        for i, (img, ann) in enumerate(zip(images, annotations)):
            label = f"image {i + 1}" if len(images) > 1 else "image"
            img = np.asarray(img)
            if img.ndim not in (2, 3):
                raise InputError(
                    f"the {label} has shape {img.shape}; use a 2D image or a stack of 2D slices "
                    "with one channel"
                )
            if np.shape(ann) != img.shape:
                raise InputError(
                    f"the annotations of the {label} have shape {np.shape(ann)} but the image has "
                    f"shape {img.shape}; they must match"
                )
            ann = check_labels_array(ann, "annotations")
            if img.size == 0:
                raise InputError(f"the {label} is empty")
            if not np.issubdtype(img.dtype, np.number) and img.dtype != np.bool_:
                raise InputError(f"the {label} has type {img.dtype}, not numbers")
            stacks.append(norm.apply(as_stack(img)))
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
        return cls(train=train, validation=validation, n_classes=k, counts=counts)


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
            val_pairs.append(Pair(pair.image[:, h - strip :], t[:, h - strip :]))
            t = t.copy()
            t[:, h - strip :] = IGNORE
            train_pairs[0] = Pair(pair.image, t, pair.weight)
    return train_pairs, val_pairs


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
        self.points: list[np.ndarray] = []  # per class: (n, 4) of (pair, z, y, x)
        annotated = np.zeros(n_classes, np.float64)  # pixels per class, before thinning
        for c in range(n_classes):
            pts = []
            for i, p in enumerate(self.pairs):
                z, y, x = np.nonzero(p.target == c)
                if z.size:
                    pts.append(np.stack([np.full_like(z, i), z, y, x], axis=1))
            arr = np.concatenate(pts) if pts else np.zeros((0, 4), np.int64)
            annotated[c] = len(arr)
            if len(arr) > max_points_per_class:
                arr = arr[self.rng.choice(len(arr), max_points_per_class, replace=False)]
            self.points.append(arr.astype(np.int32))
        self.classes = [c for c in range(n_classes) if len(self.points[c])]
        counts = annotated[self.classes]
        # Centre classes: uniform (balance 1) or as frequent as annotated (balance 0).
        self.class_p = balance / len(self.classes) + (1 - balance) * counts / counts.sum()
        self.has_weights = any(p.weight is not None for p in self.pairs)
        focus = []
        for i, p in enumerate(self.pairs):
            if p.weight is not None:
                z, y, x = np.nonzero((p.weight >= FOCUS_WEIGHT) & (p.target >= 0))
                if z.size:
                    focus.append(np.stack([np.full_like(z, i), z, y, x], axis=1))
        self.focus = np.concatenate(focus).astype(np.int32) if focus else None
        if self.focus is not None and len(self.focus) > max_points_per_class:
            keep = self.rng.choice(len(self.focus), max_points_per_class, replace=False)
            self.focus = self.focus[keep]

    def _pad(self, pair: Pair) -> Pair:
        _, h, w = pair.image.shape
        ph, pw = max(0, self.patch_size - h), max(0, self.patch_size - w)
        if not ph and not pw:
            return pair
        pad = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(pair.image, pad, mode="symmetric")
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
            _, h, w = self.pairs[i].image.shape
            y0 = int(np.clip(cy + jitter[b, 0] - p // 2, 0, h - p))
            x0 = int(np.clip(cx + jitter[b, 1] - p // 2, 0, w - p))
            corners.append((int(i), int(z), y0, x0))
        return corners

    def sample(self, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """A batch: images (B, 1, P, P) float32, targets (B, P, P) int64, weights or None."""
        p = self.patch_size
        x = np.empty((batch_size, 1, p, p), np.float32)
        y = np.empty((batch_size, p, p), np.int64)
        wts = np.ones((batch_size, p, p), np.float32) if self.has_weights else None
        for b, (i, z, y0, x0) in enumerate(self.draw(batch_size)):
            pair = self.pairs[i]
            x[b, 0] = pair.image[z, y0 : y0 + p, x0 : x0 + p]
            y[b] = pair.target[z, y0 : y0 + p, x0 : x0 + p]
            if wts is not None and pair.weight is not None:
                wts[b] = pair.weight[z, y0 : y0 + p, x0 : x0 + p]
        return x, y, wts
