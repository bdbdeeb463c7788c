"""A 3D U-Net that starts as a 2D one: the 2D model's weights inflated into 3D kernels.

Each 3 x 3 kernel of the 2D model becomes the middle slice of a 3 x 3 x 3 kernel whose
other two slices are zero, batch norms and the 1 x 1 output keep their weights. On a
volume whose slices are all alike, the inflated model gives, slice by slice, exactly what
the 2D model gives (z pooling and z up-sampling of equal slices change nothing); on a
real volume it starts as the 2D model applied slice by slice, and training learns the
zero slices, i.e. what the neighbouring slices say. This is how a new 3D model starts
from the shipped nuclei model (:func:`napari_unet.core.train.volume.volume_start_bundle`)
and so learns from a few strokes in the seconds the 2D model needs, instead of from
random weights.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from napari_unet.core.config import UNetConfig
from napari_unet.core.models.checkpoint import ModelBundle


def inflate_state(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                  ) -> dict[str, torch.Tensor]:
    """The 2D ``state`` as weights of the 3D model whose own state is ``target``: 2D
    kernels (O, I, kh, kw) in the middle z slice of (O, I, kz, kh, kw), zeros around;
    every other tensor as it is. Raises ``ValueError`` when the two do not match."""
    if set(state) != set(target):
        raise ValueError("the 2D and 3D models differ in their layers")
    out = {}
    for key, value in state.items():
        shape = tuple(target[key].shape)
        if tuple(value.shape) == shape:
            out[key] = value.clone()
        elif value.ndim == 4 and len(shape) == 5 and shape[:2] + shape[3:] == tuple(value.shape):
            kernel = torch.zeros(shape, dtype=value.dtype)
            kernel[:, :, shape[2] // 2] = value
            out[key] = kernel
        else:
            raise ValueError(f"{key}: {tuple(value.shape)} does not inflate to {shape}")
    return out


def inflate(bundle: ModelBundle, pools: tuple[tuple[int, int, int], ...], **fields,
            ) -> ModelBundle:
    """A 3D model bundle (``pools`` per level, one per level of the 2D model) that starts
    as the 2D ``bundle``; ``fields`` replace the bundle's (e.g. ``voxel_size``,
    ``normalisation``). Its training history and optimiser state start afresh."""
    if bundle.dims != 2:
        raise ValueError("only a 2D model inflates into a 3D one")
    if len(pools) != bundle.config.depth:
        raise ValueError(f"the 2D model has {bundle.config.depth} levels, not {len(pools)}")
    config = UNetConfig(**{**bundle.config.to_dict(), "dims": 3, "pools": tuple(pools)})
    target = ModelBundle.new(config, bundle.label_kind).state_dict
    state = inflate_state(bundle.state_dict, target)
    return replace(bundle, config=config, state_dict=state, optimizer_state=None,
                   history=[], iterations=0, **fields)
