"""From images and annotations to training data: checked, normalised pairs split into
training and validation. The label conventions are in :mod:`~napari_unet.core.labels`, the normalisation
in :mod:`~napari_unet.core.normalise`, the patches cut from the pairs in :mod:`.sampling`. Only numpy here:
no torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.channels import LAZY_CHANNELS, n_channels
from napari_unet.core.io.lazy import is_lazy
from napari_unet.core.labels import IGNORE, annotation_classes, as_stack, check_labels_array
from napari_unet.core.normalise import LazyNormalised, Normalisation


@dataclass
class Pair:
    """One image already normalised, (Z, Y, X) or with channels (Z, C, Y, X), with its
    target (Z, Y, X) (model classes, -1 ignored).

    For an image that does not fit in memory both are lazy views
    (:class:`~napari_unet.core.normalise.LazyNormalised`, :class:`LazyTarget`) that read only the region
    indexed.
    """

    image: np.ndarray | LazyNormalised
    target: np.ndarray | LazyTarget
    weight: np.ndarray | None = None


class LazyTarget:
    """The model classes (-1 = ignored) of lazy annotations (sparse convention), read on
    demand: indexing ``[z, ys, xs]`` (``z`` counts the chosen ``slices``) reads only that
    region; :meth:`blocks` goes through the annotated regions once (for sparse zarr
    labels only the chunks stored, for others slice by slice in bands of rows).

    ``convert`` (optional) maps a whole slice of the source to annotations first (dense
    label images of some kind); converted slices are kept for a few reads.
    """

    BAND = 2048

    def __init__(self, source, slices: list[int] | None = None, convert=None, cache: int = 4):
        self.source = source
        planar = len(source.shape) == 2
        self.slices = [0] if planar else list(range(source.shape[0]) if slices is None
                                              else slices)
        self.shape = (len(self.slices), *tuple(source.shape[-2:]))
        self.ndim = 3
        self.dtype = np.dtype(np.int16)
        self.convert = convert
        self._cache: dict[int, np.ndarray] = {}
        self._cache_size = cache

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * 2

    def _region(self, z: int, ys: slice, xs: slice) -> np.ndarray:
        src = self.source
        key = (ys, xs) if len(src.shape) == 2 else (self.slices[z], ys, xs)
        return check_labels_array(np.asarray(src[key]), "annotations")

    def plane(self, z: int) -> np.ndarray:
        """Slice ``z`` converted (with ``convert``), kept for the next reads."""
        if z not in self._cache:
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            whole = self._region(z, slice(None), slice(None))
            self._cache[z] = self._target(self.convert(whole))
        return self._cache[z]

    @staticmethod
    def _target(annotations: np.ndarray) -> np.ndarray:
        return annotations.astype(np.int16) - 1

    def __getitem__(self, key) -> np.ndarray:
        z, ys, xs = key
        if self.convert is not None:
            return self.plane(int(z))[ys, xs]
        return self._target(self._region(int(z), ys, xs))

    def blocks(self):
        """``(z, y0, x0, block)`` covering every annotated pixel (``z`` counts the chosen
        slices; ``block`` holds model classes, -1 where not annotated)."""
        from napari_unet.core.io.sparse import chunk_region, is_sparse, stored_chunks

        if self.convert is None and is_sparse(self.source):
            where = {z: i for i, z in enumerate(self.slices)}
            for coords in stored_chunks(self.source):
                region = chunk_region(self.source, coords)
                block = self._target(np.asarray(self.source[region]))
                if len(self.source.shape) == 2:
                    yield 0, region[0].start, region[1].start, block
                    continue
                for dz in range(block.shape[0]):
                    z = region[0].start + dz
                    if z in where:
                        yield where[z], region[1].start, region[2].start, block[dz]
            return
        h, w = self.shape[1:]
        for z in range(self.shape[0]):
            if self.convert is not None:
                yield z, 0, 0, self.plane(z)
                continue
            for y0 in range(0, h, self.BAND):
                yield z, y0, 0, self[z, slice(y0, min(h, y0 + self.BAND)), slice(None)]


class AnnotatedShare:
    """``annotated_fraction`` of a data set of 2D slices or of volumes: its ``counts``
    (annotated pixels per class) over the pixels of its ``train`` pairs' targets."""

    @property
    def annotated_fraction(self) -> float:
        """Annotated share of the pixels of the annotated training slices (or volumes)."""
        total = sum(p.target.size for p in self.train)
        return float(self.counts.sum()) / total if total else 0.0


@dataclass
class TrainingData(AnnotatedShare):
    """Training and validation pairs built from image / annotation pairs."""

    train: list[Pair]
    validation: list[Pair] = field(default_factory=list)
    n_classes: int = 2
    counts: np.ndarray = field(default_factory=lambda: np.zeros(2, np.int64))
    n_channels: int = 1

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
        :mod:`~napari_unet.core.io.channels`), all the same number;
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
        lazy: list[_LazyPair] = []
        for i, (img, ann) in enumerate(zip(images, annotations)):
            label = f"image {i + 1}" if len(images) > 1 else "image"
            if is_lazy(img) or is_lazy(ann):
                lazy.append(_lazy_pair(img, ann, norm, label))
                continue
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
        top = max([annotation_classes([t + 1 for t in targets])] if targets else [2])
        k = max([top] + [lp.counts.size - 1 for lp in lazy])
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
        for lp in lazy:
            counts[: lp.counts.size - 1] += lp.counts[1:][:k]
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
        for lp in lazy:
            more_train, more_validation = lp.split(norm, validation_fraction, seed)
            train += more_train
            validation += more_validation
        return cls(train=train, validation=validation, n_classes=k, counts=counts,
                   n_channels=channels.pop())


@dataclass
class _LazyPair:
    """A lazy image and its annotations: the annotated slices and the pixels per label."""

    image: object
    annotations: LazyTarget
    slices: list[int]
    counts: np.ndarray  # annotated pixels per annotation value (0 = not annotated)

    def split(self, norm: Normalisation, fraction: float, seed: int):
        """Training pairs over the annotated slices, read on demand; as for images in
        memory, some annotated slices held out for validation (their annotated region,
        at most :data:`VALIDATION_SIDE` square, read into memory)."""
        rng = np.random.default_rng(seed)
        slices = list(self.slices)
        n_val = int(len(slices) * fraction) if fraction > 0 else 0
        held = sorted(rng.choice(len(slices), size=n_val, replace=False).tolist()) if (
            len(slices) >= 5 and n_val >= 1) else []
        validation = []
        for j in held:
            z = slices[j]
            target = LazyTarget(self.annotations.source, [z], self.annotations.convert)
            window = _annotated_window(target)
            if window is None:
                continue
            ys, xs = window
            image = LazyNormalised(self.image, norm, [z])
            validation.append(Pair(image[0, ys, xs][None], target[0, ys, xs][None]))
        train_slices = [z for j, z in enumerate(slices) if j not in held]
        if not train_slices:
            return [], validation
        train = [Pair(LazyNormalised(self.image, norm, train_slices),
                      LazyTarget(self.annotations.source, train_slices,
                                 self.annotations.convert))]
        return train, validation


#: Side of the region of a held-out slice of a lazy image read for validation.
VALIDATION_SIDE = 1024


def _annotated_window(target: LazyTarget) -> tuple[slice, slice] | None:
    """A window of at most :data:`VALIDATION_SIDE` pixels around the annotated pixels of a
    one-slice target, ``None`` when nothing is annotated."""
    lo = hi = None
    for _, y0, x0, block in target.blocks():
        ys, xs = np.nonzero(block >= 0)
        if ys.size:
            b_lo = np.array([ys.min() + y0, xs.min() + x0])
            b_hi = np.array([ys.max() + y0, xs.max() + x0]) + 1
            lo = b_lo if lo is None else np.minimum(lo, b_lo)
            hi = b_hi if hi is None else np.maximum(hi, b_hi)
    if lo is None:
        return None
    size = np.array(target.shape[1:])
    side = np.minimum(np.minimum(hi - lo, VALIDATION_SIDE), size)
    start = np.clip((lo + hi) // 2 - side // 2, 0, size - side)
    return slice(int(start[0]), int(start[0] + side[0])), slice(int(start[1]),
                                                                int(start[1] + side[1]))


def _lazy_pair(image, annotations, norm: Normalisation, label: str) -> _LazyPair:
    """Check a lazy image and its annotations and find what is annotated, reading only
    the annotations (for sparse labels: the chunks stored)."""
    from napari_unet.core.labels import LazyAnnotations

    shape = tuple(image.shape)
    if len(shape) == 4:
        raise InputError(LAZY_CHANNELS.format(name=f"the {label}", n=shape[1]))
    if len(shape) not in (2, 3):
        raise InputError(f"the {label} has shape {shape}; use a 2D image or a stack of 2D "
                         "slices with one channel")
    if tuple(annotations.shape) != shape:
        raise InputError(f"the annotations of the {label} have shape "
                         f"{tuple(annotations.shape)} but the image has shape {shape}; they "
                         "must match")
    dtype = np.dtype(image.dtype)
    if not np.issubdtype(dtype, np.number) and dtype != np.bool_:
        raise InputError(f"the {label} has type {dtype}, not numbers")
    if not is_lazy(image) or _is_zarr(image):  # read by chunks through dask
        import dask.array as da

        image = da.from_zarr(image) if _is_zarr(image) else da.from_array(image)
    convert = None
    if isinstance(annotations, LazyAnnotations):
        annotations, convert = annotations.source, annotations.convert
    target = LazyTarget(annotations, None, convert)
    counts = np.zeros(1, np.int64)
    slices: set[int] = set()
    for z, _, _, block in target.blocks():
        c = np.bincount((block[block >= 0]).ravel().astype(np.int64) + 1)
        if c.size > 1 and c[1:].any():
            slices.add(target.slices[z])
        if c.size > counts.size:
            counts = np.pad(counts, (0, c.size - counts.size))
        counts[: c.size] += c
    counts[0] = 0
    return _LazyPair(image, target, sorted(slices), counts)


def _is_zarr(array) -> bool:
    return type(array).__module__.startswith("zarr")


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
