"""How large the objects of an image look, so a model can predict images whose objects
are much larger or smaller than those it was trained on.

A U-Net learns objects of the sizes it was shown: trained on nuclei of 10-20 pixels
across, it finds only the bright speckles inside dim nuclei of 40-60 pixels. The size is
estimated from the image alone (no model, no labels), as the scale of the strongest
blob-like structure: the Gaussian width sigma at which the scale-normalised Laplacian of
Gaussian (``sigma**2 * LoG``) responds most strongly over the image, turned into a
diameter (``2 * sqrt(2) * sigma``, the diameter of the disc that responds most at that
sigma). It follows the median nucleus diameter of the DSB 2018 images closely (it reads
about 1.1-1.5 times it) and is computed on a window of at most :data:`WINDOW` pixels a
side, with coarser copies of the image for the larger widths (about 0.1 s a slice).

A model records the median estimate over the slices it was trained on
(``ModelBundle.object_size``). At prediction (``rescale="auto"``), a slice whose estimate
is more than :data:`TOLERANCE` times the model's is shrunk until its objects look that
large (by at most :data:`MIN_FACTOR`), predicted, and its probabilities resized back;
below it (the spread of the estimate over one kind of image) nothing changes. A factor
given by hand (:data:`MIN_FACTOR` to :data:`MAX_FACTOR`) resizes every slice by it.
"""

from __future__ import annotations

import math

import numpy as np

#: The estimate is taken on the centre of a slice, at most this many pixels a side.
WINDOW = 512
#: A slice narrower than this (pixels) is too small to tell.
MIN_SIDE = 32
#: Gaussian widths tried (pixels); the diameters they read are 2*sqrt(2) times these.
SIGMAS = np.geomspace(1.0, 32.0, 31)
#: A slice is shrunk when its objects look more than this many times as large across as
#: the model's, until they look this large.
TOLERANCE = 1.5
#: A smaller width than the strongest is taken when it peaks at this share of it or more.
PEAK = 0.7
#: The most a slice is shrunk or enlarged.
MIN_FACTOR, MAX_FACTOR = 1 / 8, 2.0
#: Choices of the ``rescale`` setting besides a number.
RESCALE_CHOICES = ("auto", "off")


def centre_window(h: int, w: int) -> tuple[slice, slice]:
    """The centre of a slice of ``h`` x ``w`` that :func:`object_size` reads."""
    y0, x0 = max(0, (h - WINDOW) // 2), max(0, (w - WINDOW) // 2)
    return slice(y0, y0 + WINDOW), slice(x0, x0 + WINDOW)


def object_size(plane: np.ndarray) -> float | None:
    """The typical diameter (pixels) of the blob-like objects of one normalised slice
    (Y, X) or (C, Y, X) (channels are averaged); None for a flat slice or one narrower
    than :data:`MIN_SIDE`."""
    from scipy import ndimage as ndi
    from skimage.transform import downscale_local_mean

    x = np.asarray(plane, np.float32)
    if x.ndim == 3:
        x = x.mean(axis=0)
    x = np.nan_to_num(x[centre_window(*x.shape)])
    if min(x.shape) < MIN_SIDE or float(x.max() - x.min()) == 0.0:
        return None
    levels: dict[int, np.ndarray] = {0: x}
    response = []
    for sigma in SIGMAS:
        # Widths of 2 to 4 pixels on a copy shrunk by 2**k: the same response (the
        # normalised LoG does not depend on scale) for far less work.
        k = max(0, min(int(math.floor(math.log2(sigma) + 1e-9)) - 1, 3))
        if k not in levels:  # at least MIN_SIDE / 8 pixels a side
            f = 2**k
            levels[k] = downscale_local_mean(x[: x.shape[0] // f * f, : x.shape[1] // f * f],
                                             (f, f))
        s = sigma / 2**k
        response.append(float(np.mean((s * s * ndi.gaussian_laplace(levels[k], s)) ** 2)))
    r = np.asarray(response)
    i = _finest_strong_peak(r)
    logs = math.log(SIGMAS[i])
    if 0 < i < len(r) - 1:  # the peak between the widths tried (a parabola in log sigma)
        lr = np.log(np.maximum(r[i - 1 : i + 2], 1e-30))
        curve = lr[0] - 2 * lr[1] + lr[2]
        if curve < 0:
            logs += 0.5 * (lr[0] - lr[2]) / curve * math.log(SIGMAS[1] / SIGMAS[0])
    return 2 * math.sqrt(2) * math.exp(logs)


def _finest_strong_peak(response: np.ndarray) -> int:
    """The smallest width at which the response peaks at :data:`PEAK` of its highest or
    more: a tight cluster of objects also responds, at a larger width, sometimes more
    strongly than its members (six nuclei in a clump read 37 pixels, each 11 across)."""
    top = float(response.max())
    for i, v in enumerate(response):
        left = response[i - 1] if i > 0 else -np.inf
        right = response[i + 1] if i + 1 < len(response) else -np.inf
        if v >= PEAK * top and v >= left and v >= right:
            return i
    return int(np.argmax(response))


def training_size(images, most: int = 32) -> float | None:
    """The median :func:`object_size` of the slices of normalised training images
    ((Z, Y, X) or (Z, C, Y, X) arrays, or lazy views indexed ``[z, ..., ys, xs]``), of at
    most ``most`` slices spread evenly over them; None when none has structure."""
    slices = [(image, z) for image in images for z in range(image.shape[0])]
    if len(slices) > most:
        slices = [slices[i] for i in np.linspace(0, len(slices) - 1, most).round().astype(int)]
    sizes = []
    for image, z in slices:
        ys, xs = centre_window(*image.shape[-2:])
        size = object_size(np.asarray(image[z, ..., ys, xs]))
        if size is not None:
            sizes.append(size)
    return float(np.median(sizes)) if sizes else None


def check_rescale(value) -> str | float:
    """``"auto"``, ``"off"`` or a factor from :data:`MIN_FACTOR` to :data:`MAX_FACTOR`
    (1 = as is); ValueError otherwise."""
    if isinstance(value, str) and value.strip().lower() in RESCALE_CHOICES:
        return value.strip().lower()
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rescale must be auto, off or a factor such as 0.5, not {value!r}"
                         ) from None
    if not (MIN_FACTOR <= factor <= MAX_FACTOR):
        raise ValueError(f"a rescale factor must lie between {MIN_FACTOR:g} and "
                         f"{MAX_FACTOR:g}, not {value!r}")
    return factor


def factor_for(size: float | None, trained: float | None,
               tolerance: float = TOLERANCE) -> float:
    """How much to shrink a slice whose objects measure ``size`` for a model trained on
    objects of ``trained``: just enough that they look at most ``tolerance`` times as
    large across (so the factor falls smoothly from 1 as they grow); 1 when they look
    smaller or either is unknown.

    Slices whose objects look smaller are left as they are: enlarging costs four times
    the work or more, and the estimate of fine structure is the less sure one (the
    membranes of ISBI 2012 slices read 4 to 10 pixels, all at one scale). Shrinking to
    the tolerance rather than all the way to the model's size keeps more pixels across
    each outline."""
    if not size or not trained or size <= tolerance * trained:
        return 1.0
    return float(max(MIN_FACTOR, tolerance * trained / size))


def size_text(size: float | None) -> str:
    """A model's object size as the command line and the plugin say it ('' if unknown)."""
    return "" if size is None else f"objects about {size:.0f} px across"


def factor_range(factors, percent: bool = False) -> str:
    """Factors as people read them: ``0.33``, or ``0.29-0.42`` when they differ; with
    ``percent``, ``33 %`` or ``29-42 %``."""
    lo, hi = min(factors), max(factors)
    if percent:
        a, b = round(100 * lo), round(100 * hi)
        return f"{a} %" if a == b else f"{a}-{b} %"
    return f"{lo:.2g}" if f"{lo:.2g}" == f"{hi:.2g}" else f"{lo:.2g}-{hi:.2g}"


def resize_plane(image: np.ndarray, factor: float) -> np.ndarray:
    """A (C, Y, X) slice resized by ``factor`` (linear, anti-aliased when shrinking)."""
    from skimage.transform import resize

    h, w = image.shape[-2:]
    shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    return np.stack([resize(c, shape, order=1, anti_aliasing=factor < 1, preserve_range=True)
                     .astype(np.float32, copy=False) for c in image])


def upsample_rows(small: np.ndarray, h: int, w: int, r0: int, r1: int) -> np.ndarray:
    """Rows ``r0:r1`` of ``small`` (C, h', w') resized to (C, h, w), bilinearly with
    pixel centres aligned, without building the whole full-size array."""

    def axis(n_out: int, n_in: int, start: int, stop: int):
        pos = (np.arange(start, stop, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        lo = np.floor(pos).astype(np.intp)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    hs, ws = small.shape[-2:]
    ylo, yhi, wy = axis(h, hs, r0, r1)
    xlo, xhi, wx = axis(w, ws, 0, w)
    rows = small[:, ylo] * (1 - wy)[:, None] + small[:, yhi] * wy[:, None]
    return (rows[:, :, xlo] * (1 - wx) + rows[:, :, xhi] * wx).astype(np.float32, copy=False)
