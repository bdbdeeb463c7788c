"""Synthetic fluorescence nuclei with their ground truth (numpy, scipy, scikit-image).

Used for the shipped sample stack (``sample_data/make_sample_data.py``) and for the
starting model that sparse strokes fine-tune (``scripts/pretrain.py``). The default
parameters reproduce the sample stack; :func:`random_style` draws varied ones (nucleus
size and count, brightness spread, blur, texture, background and noise level).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import ellipse


@dataclass(frozen=True)
class NucleiStyle:
    radius: tuple[float, float] = (7.0, 14.0)
    count: tuple[int, int] = (18, 26)
    brightness: tuple[float, float] = (0.45, 1.0)
    texture: float = 0.25
    blur: float = 1.2
    background: float = 0.08
    gradient: float = 0.06
    photons: float = 300.0
    read_noise: float = 4.0
    overlap: float = 0.08


def random_style(rng: np.random.Generator) -> NucleiStyle:
    r = rng.uniform(3.0, 18.0)
    lo = rng.uniform(0.05, 0.6)
    area = np.pi * r * r
    dense = rng.uniform(0.05, 0.35)
    n = int(np.clip(dense * 256 * 256 / area, 3, 300))
    return NucleiStyle(
        radius=(r * 0.6, r * 1.3), count=(max(1, n // 2), n), brightness=(lo, 1.0),
        texture=rng.uniform(0.0, 0.6), blur=rng.uniform(0.5, 2.5),
        background=rng.uniform(0.0, 0.3), gradient=rng.uniform(0.0, 0.2),
        photons=float(np.exp(rng.uniform(np.log(20), np.log(2000)))),
        read_noise=rng.uniform(0.0, 10.0), overlap=rng.uniform(0.0, 0.2),
    )


def nuclei_slice(rng: np.random.Generator, shape: tuple[int, int] = (256, 256),
                 style: NucleiStyle | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One uint16 image of nuclei and its instance labels (uint16)."""
    s = style or NucleiStyle()
    h, w = shape
    labels = np.zeros(shape, np.uint16)
    brightness = np.zeros(shape, np.float32)
    n_target = int(rng.integers(s.count[0], max(s.count[1], s.count[0] + 1)))
    placed = 0
    margin = max(10, int(s.radius[1]) // 2)
    for _ in range(max(400, 20 * n_target)):
        if placed == n_target:
            break
        r1, r2 = rng.uniform(*s.radius), rng.uniform(*s.radius)
        cy, cx = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        rr, cc = ellipse(cy, cx, r1, r2, shape=shape, rotation=rng.uniform(0, np.pi))
        if np.count_nonzero(labels[rr, cc]) > s.overlap * rr.size:
            continue
        free = labels[rr, cc] == 0
        placed += 1
        labels[rr[free], cc[free]] = placed
        brightness[rr[free], cc[free]] = rng.uniform(*s.brightness)
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), 2).astype(np.float32)
    signal = ndi.gaussian_filter(brightness * (1 + s.texture * texture), s.blur)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    background = s.background + s.gradient * (yy + xx)
    counts = rng.poisson((signal + background) * s.photons).astype(np.float32)
    image = counts + rng.normal(100, s.read_noise, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def background_strokes(rng: np.random.Generator, labels: np.ndarray, count: int, reach: int,
                       width: int = 2, margin: int = 3) -> np.ndarray:
    """Straight brush strokes through the background, kept ``margin`` pixels off objects.

    ``count`` strokes of up to ``reach`` pixels in each direction, ``width`` dilations
    thick, as a biologist paints background between and around the objects.
    """
    from skimage.draw import line

    h, w = labels.shape
    allowed = ndi.binary_erosion(labels == 0, iterations=margin)
    strokes = np.zeros(labels.shape, bool)
    for _ in range(count):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1 = int(np.clip(y0 + rng.integers(-reach, reach + 1), 0, h - 1))
        x1 = int(np.clip(x0 + rng.integers(-reach, reach + 1), 0, w - 1))
        rr, cc = line(int(y0), int(x0), y1, x1)
        stroke = np.zeros(labels.shape, bool)
        stroke[rr, cc] = True
        strokes |= ndi.binary_dilation(stroke, iterations=width) & allowed
    return strokes
