"""A synthetic z-stack of fluorescence nuclei, its 3D ground truth and starter strokes
(numpy, scipy, scikit-image; no torch).

The voxels are anisotropic as in a confocal stack (z coarser than y and x) and the
optics blur more along z; nuclei are ellipsoids of a few micrometres, some touching.
Used for the plugin's *Nuclei volume* sample and the tests; seeded, so the same seed
gives the same volume.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_unet.synthetic import background_strokes

#: Z, Y, X in µm of the sample volume (z 2.5x coarser than y and x).
SAMPLE_VOXEL = (0.5, 0.2, 0.2)
SAMPLE_SHAPE = (32, 128, 128)
#: The slices of the sample volume that carry starter strokes.
STROKE_SLICES = (8, 16, 24)


@dataclass(frozen=True)
class VolumeStyle:
    radius_um: tuple[float, float] = (2.2, 3.4)
    count: int = 18
    brightness: tuple[float, float] = (0.5, 1.0)
    blur_um: tuple[float, float, float] = (0.6, 0.25, 0.25)
    background: float = 0.08
    photons: float = 200.0
    read_noise: float = 3.0


def nuclei_volume(rng: np.random.Generator, shape: tuple[int, int, int] = SAMPLE_SHAPE,
                  voxel: tuple[float, float, float] = SAMPLE_VOXEL,
                  style: VolumeStyle | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A uint16 volume of nuclei and its 3D instance labels (uint16, one id per nucleus
    through all its slices)."""
    s = style or VolumeStyle()
    v = np.asarray(voxel, np.float64)
    extent = np.asarray(shape) * v
    labels = np.zeros(shape, np.uint16)
    brightness = np.zeros(shape, np.float32)
    placed = 0
    for _ in range(40 * s.count):
        if placed == s.count:
            break
        radii = rng.uniform(*s.radius_um, size=3) * (0.8, 1.0, 1.0)
        centre = rng.uniform(0.15, 0.85, size=3) * extent
        lo = np.maximum(np.floor((centre - radii) / v), 0).astype(int)
        hi = np.minimum(np.ceil((centre + radii) / v) + 1, shape).astype(int)
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        zz, yy, xx = (g * v[i] - centre[i] for i, g in enumerate(np.ogrid[box]))
        inside = (zz / radii[0]) ** 2 + (yy / radii[1]) ** 2 + (xx / radii[2]) ** 2 <= 1.0
        if not inside.any() or np.count_nonzero(labels[box][inside]) > 0.05 * inside.sum():
            continue
        free = inside & (labels[box] == 0)
        placed += 1
        labels[box][free] = placed
        brightness[box][free] = rng.uniform(*s.brightness)
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), (1, 2, 2)).astype(np.float32)
    signal = ndi.gaussian_filter(brightness * (1 + 0.25 * texture),
                                 np.asarray(s.blur_um) / v)
    counts = rng.poisson((signal + s.background) * s.photons).astype(np.float32)
    image = counts + rng.normal(100, s.read_noise, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def volume_strokes(rng: np.random.Generator, labels: np.ndarray,
                   slices: tuple[int, ...] = STROKE_SLICES) -> np.ndarray:
    """Starter strokes on a few slices, as a biologist paints them (uint8; 0 = not
    annotated, 1 = background, 2 = nucleus): on each slice a few nuclei filled and
    background strokes between them."""
    strokes = np.zeros(labels.shape, np.uint8)
    for z in slices:
        plane = labels[z]
        ids = [i for i in np.unique(plane) if i]
        for i in rng.choice(ids, size=min(3, len(ids)), replace=False) if ids else []:
            strokes[z][ndi.binary_erosion(plane == i, iterations=1)] = 2
        reach = max(8, plane.shape[0] // 4)
        strokes[z][background_strokes(rng, plane, count=8, reach=reach, width=1,
                                      margin=3)] = 1
    return strokes


def sample_volume(seed: int = 2027) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The sample volume: image, 3D labels and starter strokes on :data:`STROKE_SLICES`."""
    rng = np.random.default_rng(seed)
    image, labels = nuclei_volume(rng)
    return image, labels, volume_strokes(rng, labels)
