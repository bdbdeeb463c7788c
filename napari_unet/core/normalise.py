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
        step = max(1, image.size // SAMPLE_PIXELS)
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
