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

from napari_unet.synthetic import background_strokes, nuclei_slice

HERE = Path(__file__).resolve().parent
SHAPE = (5, 256, 256)


def scribble(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """A biologist's starter annotation: a few nuclei filled, background strokes."""
    ann = np.zeros(labels.shape, np.uint8)
    ids = [i for i in np.unique(labels) if i]
    for i in rng.choice(ids, size=min(5, len(ids)), replace=False):
        ann[ndi.binary_erosion(labels == i, iterations=1)] = 2
    ann[background_strokes(rng, labels, count=14, reach=60, width=2, margin=3)] = 1
    return ann


def make(seed: int = 2026) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images, labels = zip(*(nuclei_slice(rng, SHAPE[1:]) for _ in range(SHAPE[0])))
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
