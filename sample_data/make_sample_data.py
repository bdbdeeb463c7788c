"""Generate the shipped sample data: synthetic fluorescence nuclei.

Run ``python sample_data/make_sample_data.py`` to rewrite the TIFFs beside this script.
The output is deterministic (seeded) and small (a few hundred kB):

* ``nuclei.tif``               5 x 256 x 256 uint16 stack: blurred, noisy, uneven nuclei,
                               some touching, on a background with a slow gradient;
* ``nuclei_labels.tif``        its ground truth, one label per nucleus (uint16);
* ``nuclei_annotations.tif``   a starter annotation as a biologist paints it: on the
                               first two slices a few nuclei filled and background
                               strokes between them (0 = not annotated, 1 = background,
                               2 = nucleus).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage.draw import ellipse, line

HERE = Path(__file__).resolve().parent
SHAPE = (5, 256, 256)


def make_slice(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    labels = np.zeros(shape, np.uint16)
    brightness = np.zeros(shape, np.float32)
    n_target = int(rng.integers(18, 26))
    placed = 0
    for _ in range(400):
        if placed == n_target:
            break
        r1, r2 = rng.uniform(7, 14), rng.uniform(7, 14)
        cy, cx = rng.uniform(10, h - 10), rng.uniform(10, w - 10)
        rr, cc = ellipse(cy, cx, r1, r2, shape=shape, rotation=rng.uniform(0, np.pi))
        overlap = np.count_nonzero(labels[rr, cc])
        if overlap > 0.08 * rr.size:  # a little overlap makes touching nuclei
            continue
        free = labels[rr, cc] == 0
        placed += 1
        labels[rr[free], cc[free]] = placed
        brightness[rr[free], cc[free]] = rng.uniform(0.45, 1.0)
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), 2).astype(np.float32)
    signal = brightness * (1 + 0.25 * texture)
    signal = ndi.gaussian_filter(signal, 1.2)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    background = 0.08 + 0.06 * (yy + xx)
    photons = rng.poisson((signal + background) * 300).astype(np.float32)
    image = photons + rng.normal(100, 4, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def scribble(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A biologist's starter annotation: a few nuclei filled, background strokes."""
    ann = np.zeros(labels.shape, np.uint8)
    ids = [i for i in np.unique(labels) if i]
    for i in rng.choice(ids, size=min(5, len(ids)), replace=False):
        ann[ndi.binary_erosion(labels == i, iterations=1)] = 2
    h, w = labels.shape
    background = ndi.binary_erosion(labels == 0, iterations=3)
    for _ in range(14):
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        y1 = int(np.clip(y0 + rng.integers(-60, 61), 0, h - 1))
        x1 = int(np.clip(x0 + rng.integers(-60, 61), 0, w - 1))
        rr, cc = line(int(y0), int(x0), y1, x1)
        stroke = np.zeros(labels.shape, bool)
        stroke[rr, cc] = True
        stroke = ndi.binary_dilation(stroke, iterations=2) & background
        ann[stroke] = 1
    return ann


def make(seed: int = 2026) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images, labels = zip(*(make_slice(rng, SHAPE[1:]) for _ in range(SHAPE[0])))
    image, label = np.stack(images), np.stack(labels)
    annotations = np.zeros(SHAPE, np.uint8)
    for z in range(2):
        annotations[z] = scribble(rng, label[z])
    return image, label, annotations


def main() -> None:
    image, labels, annotations = make()
    opts = {"imagej": True, "compression": "zlib", "resolution": (1 / 0.5, 1 / 0.5)}
    tifffile.imwrite(HERE / "nuclei.tif", image, metadata={"axes": "ZYX", "spacing": 1.0}, **opts)
    tifffile.imwrite(HERE / "nuclei_labels.tif", labels, metadata={"axes": "ZYX"}, **opts)
    tifffile.imwrite(HERE / "nuclei_annotations.tif", annotations, metadata={"axes": "ZYX"}, **opts)
    print(f"wrote {image.shape} nuclei ({labels.max(axis=(1, 2)).sum()} in all) to {HERE}")


if __name__ == "__main__":
    main()
