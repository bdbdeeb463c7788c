"""What a 3D model's bioimage.io package differs in: test tensors cut from a volume
(batch, channel, z, y, x), its spatial axes described with the voxel size, and the
normalisation over the whole volume (``scale_range`` over z, y and x)."""

from __future__ import annotations

import numpy as np

from napari_unet.core.errors import InputError
from napari_unet.core.models.checkpoint import ModelBundle

#: The test volume written into a package: at most this many voxels (z, y, x).
TEST_VOLUME = (16, 96, 96)


def centre_crop(volume: np.ndarray, multiple: tuple[int, ...],
                most: tuple[int, ...] = TEST_VOLUME) -> np.ndarray:
    """(C, Z, Y, X) cropped around its centre to at most ``most`` and to multiples of
    ``multiple``."""
    sizes = volume.shape[1:]
    crop = [min(n, max(m, s)) // m * m for n, m, s in zip(sizes, multiple, most)]
    if 0 in crop:
        raise InputError(f"the test volume ({' x '.join(map(str, sizes))}) is smaller than "
                         f"{' x '.join(map(str, multiple))}, the smallest input of this model")
    starts = [(n - c) // 2 for n, c in zip(sizes, crop)]
    return np.ascontiguousarray(volume[(slice(None), *(slice(s, s + c)
                                                       for s, c in zip(starts, crop)))])


def volume_reference_tensors(bundle: ModelBundle, volume: np.ndarray):
    """The test input (1, C, Z, Y, X) float32 and the probabilities (1, K, Z, Y, X) that
    :class:`~napari_unet.core.predict.volume.VolumePredictor` gives for it (one tile, no
    rescaling, float32 on the CPU)."""
    from napari_unet.core.predict.volume import VolumePredictor

    volume = np.asarray(volume)
    if volume.ndim == 3:
        volume = volume[None]
    elif volume.ndim == 4:
        volume = np.moveaxis(volume, 1, 0)
    else:
        raise InputError(f"a 3D model's test image is a volume (Z, Y, X), not shape "
                         f"{volume.shape}")
    if volume.shape[0] != bundle.in_channels:
        raise InputError(f"the test volume has {volume.shape[0]} channels; the model reads "
                         f"{bundle.in_channels}")
    raw = centre_crop(volume.astype(np.float32), bundle.config.multiple)
    predictor = VolumePredictor(bundle, device="cpu", tile=raw.shape[1:], margin=(0, 0, 0),
                                rescale=False, mixed_precision=False)
    image = raw[0] if raw.shape[0] == 1 else np.moveaxis(raw, 0, 1)
    probs = predictor.probabilities(image)
    return raw[None], probs[None].astype(np.float32)


def space_axes(v0_5, bundle: ModelBundle, output_of: str | None = None) -> list:
    """The spatial axes of a package's tensors: (z,) y, x, each saying its voxel size in
    micrometres for a 3D model (the package's ``config.napari_unet.voxel_size`` holds
    it too); an output's sizes refer to the input ``output_of``."""
    names = ["z", "y", "x"] if bundle.dims == 3 else ["y", "x"]
    multiple = bundle.config.multiple if bundle.dims == 3 else (2**bundle.config.depth,) * 2
    voxel = bundle.voxel_size if bundle.dims == 3 else None
    axes = []
    for i, name in enumerate(names):
        # The voxel size goes in the description, not as the axis scale: the spec checks
        # an output's size as input size * scale / scale, which floats miss by 1e-14.
        extra = {} if voxel is None else {"description": f"{voxel[i]:g} um per voxel"}
        axis_id = v0_5.AxisId(name)
        if output_of is None:
            size = v0_5.ParameterizedSize(min=multiple[i], step=multiple[i])
            axes.append(v0_5.SpaceInputAxis(id=axis_id, size=size, **extra))
        else:
            size = v0_5.SizeReference(tensor_id=v0_5.TensorId(output_of), axis_id=axis_id)
            axes.append(v0_5.SpaceOutputAxis(id=axis_id, size=size, **extra))
    return axes
