"""Percentile normalisation of images, stored in the model so prediction does the same.
Only numpy here: no torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Percentiles are taken from every ``size // SAMPLE_PIXELS``-th pixel of an image.
SAMPLE_PIXELS = 2_000_000


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

        ``image`` is (Y, X), a stack (Z, Y, X) or a stack of channels (Z, C, Y, X); each
        channel gets its own percentiles, and with ``per_slice`` every slice too. NaN and
        infinity become 0 after normalisation.
        """
        image = np.asarray(image)
        if image.ndim == 4:
            return np.stack([self.apply(image[:, c]) for c in range(image.shape[1])], axis=1)
        if image.ndim == 3 and self.per_slice:
            return np.stack([self._one(s) for s in image])
        return self._one(image)

    def _one(self, image: np.ndarray) -> np.ndarray:
        return self.normalise(image, self.stats(image))

    def stats(self, image: np.ndarray) -> tuple[float, float] | None:
        """The offset and the scale that map the percentiles of ``image`` to 0 and 1,
        from at most about two million of its pixels (no copy of the whole image);
        ``None`` when it has no finite value."""
        sample = thinned(image)
        if sample is None:
            return None
        lo, hi = np.percentile(sample, [self.low, self.high])
        scale = float(hi - lo)
        if not np.isfinite(scale) or scale <= 0:
            scale = 1.0
        return float(lo), scale

    @staticmethod
    def normalise(image: np.ndarray, stats: tuple[float, float] | None) -> np.ndarray:
        """``(image - offset) / scale`` as float32 (one copy); NaN and infinity become 0."""
        image = np.asarray(image)
        if stats is None:
            return np.zeros(image.shape, np.float32)
        lo, scale = stats
        if image.dtype.kind in "fc" and image.real.dtype.itemsize > 4:
            # float64: scaled in float64 first, a million pixels at a time, so that values
            # beyond float32's range (1e300) are not all infinite, hence 0
            x = np.empty(image.shape, np.float32)
            src, dst = np.ascontiguousarray(image.real).reshape(-1), x.reshape(-1)
            for i in range(0, src.size, 1 << 20):
                part = (src[i : i + (1 << 20)] - lo) / scale
                np.clip(part, -3e38, 3e38, out=part)  # nan stays nan, for below
                dst[i : i + (1 << 20)] = part
        else:
            x = image.astype(np.float32, copy=True)
            x -= np.float32(lo)
            x /= np.float32(scale)
        if image.dtype.kind in "fc":  # NaN and infinity, a million pixels at a time
            flat = x.reshape(-1)
            for i in range(0, flat.size, 1 << 20):
                np.nan_to_num(flat[i : i + (1 << 20)], copy=False, nan=0.0, posinf=0.0,
                              neginf=0.0)
        return x


def thinned(image) -> np.ndarray | None:
    """At most about two million of ``image``'s finite values, as a flat array of numbers
    (no copy of the whole image): what its percentiles are taken from; ``None`` when it
    has none."""
    image = np.asarray(image)
    if image.size == 0:
        return None
    step = max(1, image.size // SAMPLE_PIXELS)
    if image.flags.c_contiguous:
        sample = image.reshape(-1)[::step]  # a view
    else:  # a strided view: sample rows and columns without copying the image
        k = max(1, int(round(step ** (1 / image.ndim))))
        sample = image[(slice(None, None, k),) * image.ndim].ravel()
    if sample.dtype.kind == "b":
        sample = sample.astype(np.uint8)
    elif sample.dtype.kind in "fc":
        # float64 stays float64: values beyond float32's range are not infinite
        sample = sample.real.astype(np.float64 if sample.real.dtype.itemsize > 4
                                    else np.float32, copy=False)
        finite = np.isfinite(sample)
        if not finite.all():
            if not finite.any():
                return None
            sample = sample[finite]
    return sample


def has_finite(image) -> bool:
    """Whether ``image`` (numpy, or lazy: dask, zarr) holds at least one finite value.
    Integer images always do; a numpy float image is scanned a million values at a time
    until one is found (at once for any ordinary image); a lazy one is judged on the
    sample of its chunks that normalisation takes."""
    dtype = np.dtype(getattr(image, "dtype", np.float32))
    if dtype.kind not in "fc":
        return True
    if isinstance(image, np.ndarray):
        flat = image.reshape(-1) if image.flags.c_contiguous else image.ravel()
        return any(np.isfinite(flat[i : i + (1 << 20)]).any()
                   for i in range(0, flat.size, 1 << 20))
    return bool(np.isfinite(np.asarray(sample_chunks(image))).any())


def chunk_grid(array) -> list[list[tuple[int, int]]]:
    """The (start, stop) of the chunks along each axis of a dask or zarr array (one
    chunk per axis for anything else)."""
    chunks = getattr(array, "chunks", None)
    grid = []
    for axis, size in enumerate(array.shape):
        sizes = None
        if chunks is not None and len(chunks) == len(array.shape):
            c = chunks[axis]
            if isinstance(c, tuple):  # dask: the size of every chunk
                sizes = list(c)
            elif int(c) > 0:  # zarr: one chunk size
                sizes = [int(c)] * (-(-size // int(c)))
                sizes[-1] = size - int(c) * (len(sizes) - 1)
        sizes = sizes or [size]
        bounds, start = [], 0
        for n in sizes:
            bounds.append((start, start + int(n)))
            start += int(n)
        grid.append(bounds)
    return grid


def sample_chunks(array, max_values: int = 2_000_000, max_chunks: int = 16,
                  seed: int = 0) -> np.ndarray:
    """Values of ``array`` (lazy or not) from at most ``max_chunks`` of its chunks drawn
    at random, thinned to about ``max_values``: what percentiles are estimated from
    without reading the whole array."""
    grid = chunk_grid(array)
    counts = [len(g) for g in grid]
    total = int(np.prod(counts, dtype=np.int64))
    rng = np.random.default_rng(seed)
    picks = (range(total) if total <= max_chunks
             else sorted(rng.choice(total, size=max_chunks, replace=False).tolist()))
    per_chunk = max(1, max_values // max(1, len(picks)))
    parts = []
    for flat in picks:
        index = np.unravel_index(int(flat), counts)
        region = tuple(slice(*grid[a][i]) for a, i in enumerate(index))
        block = np.asarray(array[region]).reshape(-1)
        parts.append(block[:: max(1, block.size // per_chunk)])
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class LazyNormalised:
    """A lazy image seen as the normalised (Z, Y, X) stack of some of its slices.

    Indexing ``[z, ys, xs]`` (``z`` counts the chosen ``slices``) reads only the chunks
    of that region and normalises them with the slice's percentiles, which come from a
    sample of the slice's chunks (:func:`sample_chunks`), or of the whole image's
    without ``per_slice``.
    """

    def __init__(self, source, normalisation: Normalisation, slices: list[int] | None = None):
        self.source = source
        self.normalisation = normalisation
        planar = len(source.shape) == 2
        self.slices = [0] if planar else list(range(source.shape[0]) if slices is None
                                              else slices)
        self.shape = (len(self.slices), *tuple(source.shape[-2:]))
        self.ndim = 3
        self.dtype = np.dtype(np.float32)
        self._stats: dict[int, tuple[float, float] | None] = {}
        self._global = None if normalisation.per_slice or planar else (
            normalisation.stats(sample_chunks(source)))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * 4

    def plane(self, z: int):
        """The lazy source's slice behind ``z``."""
        return self.source if len(self.source.shape) == 2 else self.source[self.slices[z]]

    def stats(self, z: int) -> tuple[float, float] | None:
        if self._global is not None:
            return self._global
        if z not in self._stats:
            self._stats[z] = self.normalisation.stats(
                sample_chunks(self.plane(z), seed=self.slices[z]))
        return self._stats[z]

    def __getitem__(self, key) -> np.ndarray:
        z, ys, xs = (k for k in key if k is not Ellipsis)  # ``[z, ..., ys, xs]`` alike
        raw = np.asarray(self.plane(int(z))[ys, xs])
        return self.normalisation.normalise(raw, self.stats(int(z)))
