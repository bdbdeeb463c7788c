"""Synthetic anisotropic z-stacks of nuclei with their 3D ground truth and starter
strokes on a few slices (numpy, scipy, scikit-image; no torch).

A volume of ellipsoidal nuclei placed in micrometres (so they stay round at any voxel
size), with a textured, depth-attenuated signal, blurred more along z than in xy (a
confocal point spread function is about 3x longer along the axis), Poisson and read
noise: like a confocal stack of nuclei. :func:`starter_strokes` paints, as a biologist
would, a few strokes on three slices: across nuclei (label 2) and through the
background (label 1). The demo's sample volume and ``benchmarks/quality/volumes.py``
use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_unet.synthetic import background_strokes


@dataclass(frozen=True)
class VolumeStyle:
    """How a synthetic volume looks (lengths in micrometres)."""

    voxel_size: tuple[float, float, float] = (0.5, 0.2, 0.2)
    radius: tuple[float, float] = (2.2, 3.6)
    count: int = 30
    brightness: tuple[float, float] = (0.45, 1.0)
    texture: float = 0.3
    blur_xy: float = 0.25  # Gaussian sigma of the point spread function, um
    blur_z: float = 0.8
    attenuation: float = 0.35  # brightness lost from the first slice to the last
    background: float = 0.06
    photons: float = 200.0
    read_noise: float = 4.0


def nuclei_volume(rng: np.random.Generator, shape: tuple[int, int, int] = (40, 128, 128),
                  style: VolumeStyle | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A uint16 volume (Z, Y, X) of nuclei at ``style.voxel_size`` and its instance
    labels (uint16, one id per nucleus through all its slices)."""
    s = style or VolumeStyle()
    vz, vy, vx = s.voxel_size
    labels = np.zeros(shape, np.uint16)
    brightness = np.zeros(shape, np.float32)
    extent = np.array(shape) * np.array(s.voxel_size)
    placed = 0
    for _ in range(40 * s.count):
        if placed == s.count:
            break
        radii = rng.uniform(*s.radius, size=3) * np.array([0.8, 1.0, 1.0])
        centre = rng.uniform(0, 1, 3) * extent
        angle = rng.uniform(0, np.pi)
        lo = np.maximum(((centre - radii * 1.05) / s.voxel_size).astype(int), 0)
        hi = np.minimum(((centre + radii * 1.05) / s.voxel_size).astype(int) + 2, shape)
        if np.any(hi <= lo):
            continue
        zz, yy, xx = np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij")
        dz = zz * vz - centre[0]
        dy = yy * vy - centre[1]
        dx = xx * vx - centre[2]
        ry = np.cos(angle) * dy + np.sin(angle) * dx
        rx = -np.sin(angle) * dy + np.cos(angle) * dx
        inside = (dz / radii[0]) ** 2 + (ry / radii[1]) ** 2 + (rx / radii[2]) ** 2 <= 1
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        if not inside.any() or np.count_nonzero(labels[box][inside]) > 0.03 * inside.sum():
            continue
        placed += 1
        free = inside & (labels[box] == 0)
        labels[box][free] = placed
        brightness[box][free] = rng.uniform(*s.brightness)
    sigma_tex = np.array([1.0, 1.0, 1.0]) * 0.4 / np.array(s.voxel_size)
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape), sigma_tex).astype(np.float32)
    texture /= max(float(texture.std()), 1e-6)
    depth = 1 - s.attenuation * np.linspace(0, 1, shape[0], dtype=np.float32)[:, None, None]
    signal = brightness * (1 + s.texture * texture) * depth
    signal = ndi.gaussian_filter(signal, (s.blur_z / vz, s.blur_xy / vy, s.blur_xy / vx))
    counts = rng.poisson(np.clip(signal + s.background, 0, None) * s.photons)
    image = counts.astype(np.float32) + rng.normal(100, s.read_noise, shape)
    return np.clip(image, 0, 65535).astype(np.uint16), labels


def stroke_slices(n: int, count: int = 3) -> list[int]:
    """``count`` slices spread over ``n`` (at a quarter, half and three quarters)."""
    return sorted({int(round((i + 1) * n / (count + 1))) for i in range(count)})


def starter_strokes(rng: np.random.Generator, labels: np.ndarray,
                    slices: list[int] | None = None, objects_per_slice: int = 6,
                    background_count: int = 6) -> np.ndarray:
    """Sparse annotations (uint8, 0 = not annotated, 1 = background, 2 = nucleus) on
    ``slices`` (by default three, :func:`stroke_slices`) of instance ``labels``: on each,
    a stroke across the inner part of up to ``objects_per_slice`` nuclei and
    ``background_count`` strokes through the background."""
    from skimage.draw import line

    out = np.zeros(labels.shape, np.uint8)
    h, w = labels.shape[1:]
    for z in slices if slices is not None else stroke_slices(labels.shape[0]):
        plane = labels[z]
        ids = [i for i in np.unique(plane) if i]
        rng.shuffle(ids)
        for i in ids[:objects_per_slice]:
            core = ndi.binary_erosion(plane == i, iterations=2)
            ys, xs = np.nonzero(core)
            if ys.size < 4:
                continue
            a, b = rng.choice(ys.size, 2, replace=False)
            rr, cc = line(int(ys[a]), int(xs[a]), int(ys[b]), int(xs[b]))
            stroke = np.zeros((h, w), bool)
            stroke[rr, cc] = True
            out[z][ndi.binary_dilation(stroke) & core] = 2
        reach = max(8, min(h, w) // 6)
        out[z][background_strokes(rng, plane, background_count, reach)] = 1
    return out


def sample_volume(seed: int = 0) -> dict:
    """The demo's volume: image, ground truth, starter strokes on three slices and the
    voxel size (z, y, x) in micrometres."""
    rng = np.random.default_rng(seed)
    style = VolumeStyle()
    image, labels = nuclei_volume(rng, (40, 128, 128), style)
    strokes = starter_strokes(rng, labels)
    return {"image": image, "labels": labels, "annotations": strokes,
            "voxel_size": style.voxel_size}
