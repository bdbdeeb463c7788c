"""Volumes larger than memory: a 3D model predicts them block by block into a chunked
OME-Zarr, as :mod:`.blocks` does for 2D models.

Each block is read with a halo of context on every face (a dask or zarr array reads
only that region), predicted by the :class:`~.volume.VolumePredictor` (zoomed to the
model's voxel size and back when the volume's differs, the normalisation fixed for the
whole volume from a sample of its chunks), cropped to the block and written to its
chunks of the output; peak memory is one block with its halo and its probabilities.
The output is written in a temporary folder beside the target and put in place when
complete (:mod:`napari_unet.core.io.ngff`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.io.ngff import create_group, put_in_place, temp_beside
from napari_unet.core.normalise import sample_chunks
from napari_unet.core.predict.volume import VolumePredictor
from napari_unet.core.voxels import VoxelSize

#: Default block (z, y, x) predicted at a time, and its halo of context per face.
BLOCK = (64, 512, 512)
HALO = (8, 32, 32)


@dataclass
class VolumeBlocksResult:
    """Where the labels (and probabilities) went, the blocks predicted and the peak
    block (with halo) in voxels."""

    labels: Path
    probabilities: Path | None
    blocks: int
    largest_block: int


def block_starts(size: int, block: int) -> list[int]:
    return list(range(0, size, block))


def predict_volume_blocks(
    predictor: VolumePredictor, volume, out: str | Path, *,
    voxel_size: VoxelSize | None = None, block: tuple[int, int, int] = BLOCK,
    halo: tuple[int, int, int] = HALO, chunks: tuple[int, int, int] | None = None,
    probabilities: str | Path | None = None, overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> VolumeBlocksResult:
    """Labels of a (Z, Y, X) ``volume`` (numpy, dask or zarr) into the OME-Zarr ``out``
    (chunks of ``chunks``, by default the block), and the class probabilities into
    ``probabilities`` (C, Z, Y, X) when given."""
    shape = tuple(int(n) for n in volume.shape)
    if len(shape) != 3:
        raise InputError(f"block prediction of volumes reads one channel (Z, Y, X), not "
                         f"shape {shape}: choose one channel")
    predictor.check_volume(volume)
    out = Path(out)
    block = tuple(min(int(b), n) for b, n in zip(block, shape))
    chunks = tuple(min(int(c), n) for c, n in zip(chunks or block, shape))
    scale = list(voxel_size) if voxel_size is not None else [1.0, 1.0, 1.0]
    norm = predictor.bundle.normalisation
    predictor.stats = norm.stats(sample_chunks(volume))
    targets = [(out, temp_beside(out))]
    if probabilities is not None:
        targets.append((Path(probabilities), temp_beside(Path(probabilities))))
    for target, _ in targets:
        if target.exists() and not overwrite:
            raise InputError(f"{target} exists; give --overwrite to replace it")
    import zarr

    k = predictor.bundle.n_classes
    lab_path = create_group(targets[0][1], out.name, shape, chunks, np.uint8, "zyx", scale,
                            labels=True)
    labels = zarr.open_array(lab_path, mode="r+")
    probs_out = None
    if probabilities is not None:
        p_path = create_group(targets[1][1], Path(probabilities).name, (k, *shape),
                              (k, *chunks), np.float32, "czyx", [1.0, *scale], labels=False)
        probs_out = zarr.open_array(p_path, mode="r+")
    corners = list(itertools.product(*(block_starts(n, b) for n, b in zip(shape, block))))
    largest = 0
    try:
        for i, corner in enumerate(corners):
            inner = tuple(slice(c, min(c + b, n)) for c, b, n in zip(corner, block, shape))
            outer = tuple(slice(max(0, s.start - h), min(n, s.stop + h))
                          for s, h, n in zip(inner, halo, shape))
            data = np.asarray(volume[outer])
            largest = max(largest, data.size)
            p = predictor.probabilities(data, voxel_size)
            crop = tuple(slice(s.start - o.start, s.stop - o.start) for s, o in zip(inner, outer))
            p = p[(slice(None), *crop)]
            labels[inner] = predictor.labels(p)
            if probs_out is not None:
                probs_out[(slice(None), *inner)] = p
            if progress is not None:
                progress(i + 1, len(corners))
    except BaseException:
        import shutil

        for _, tmp in targets:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        predictor.stats = None
    for target, tmp in targets:
        put_in_place(tmp, target, overwrite)
    return VolumeBlocksResult(out, None if probabilities is None else Path(probabilities),
                              len(corners), largest)
