"""A 3D model that starts as the 2D nuclei model: inflated kernels, same answers."""

import numpy as np
import pytest
import torch

from napari_unet.core.config import TrainOptions, UNetConfig
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.inflate import inflate
from napari_unet.core.train.plan import start_bundle
from napari_unet.core.train.volume import plan_volume_training

VOXEL = (0.5, 0.2, 0.2)  # z 2.5x coarser: the first level does not pool z


def test_inflated_model_gives_the_2d_answer_on_every_slice_of_a_flat_volume():
    flat = ModelBundle.new(UNetConfig(1, 3, 4, 3), seed=3)
    pools = ((1, 2, 2), (2, 2, 2), (2, 2, 2))
    deep = inflate(flat, pools, voxel_size=VOXEL)
    assert deep.dims == 3 and deep.config.pools == pools and deep.voxel_size == VOXEL
    assert deep.iterations == 0 and deep.history == []
    image = np.random.default_rng(0).normal(size=(40, 48)).astype(np.float32)
    m2, m3 = flat.build_model().eval(), deep.build_model().eval()
    with torch.no_grad():
        a = m2(torch.from_numpy(image)[None, None])[0]
        b = m3(torch.from_numpy(np.repeat(image[None], 8, 0))[None, None])[0]
    assert b.shape == (3, 8, 40, 48)
    assert torch.allclose(b, a[:, None].expand_as(b), atol=1e-4)


def test_the_inflated_nuclei_model_sees_neighbouring_slices():
    flat = start_bundle("annotation", 2)
    deep = inflate(flat, ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)))
    varied = np.random.default_rng(1).normal(size=(8, 48, 48)).astype(np.float32)
    m2, m3 = flat.build_model().eval(), deep.build_model().eval()
    with torch.no_grad():
        c = m3(torch.from_numpy(varied)[None, None])[0]
        d = m2(torch.from_numpy(varied[3])[None, None])[0]
    assert float((c[:, 3] - d).abs().max()) > 1e-3  # z pooling mixes the slices


def test_inflation_refuses_what_does_not_fit():
    flat = ModelBundle.new(UNetConfig(1, 2, 4, 2))
    with pytest.raises(ValueError, match="levels"):
        inflate(flat, ((1, 2, 2),))
    deep = inflate(flat, ((1, 2, 2), (2, 2, 2)))
    with pytest.raises(ValueError, match="2D model"):
        inflate(deep, ((1, 2, 2), (2, 2, 2)))


def test_strokes_on_a_volume_start_from_the_nuclei_model_by_default():
    volume = np.random.default_rng(2).normal(100, 10, (16, 48, 48)).astype(np.float32)
    strokes = np.zeros(volume.shape, np.uint8)
    strokes[8, 5:15, 5:30], strokes[8, 30:40, 30:40] = 1, 2
    plan = plan_volume_training([volume], [strokes], TrainOptions(iterations=1, device="cpu"),
                                voxel_size=VOXEL)
    nuclei = start_bundle("annotation", 2)
    assert plan.bundle.dims == 3 and plan.bundle.voxel_size == VOXEL
    assert plan.bundle.config.depth == nuclei.config.depth
    assert plan.bundle.config.pools[0] == (1, 2, 2)
    key = "inc.double_conv.0.weight"
    assert torch.equal(plan.bundle.state_dict[key][:, :, 1], nuclei.state_dict[key])
    assert not plan.bundle.state_dict[key][:, :, 0].any()
    none = plan_volume_training([volume], [strokes],
                                TrainOptions(iterations=1, device="cpu", start_model="none"),
                                voxel_size=VOXEL)
    assert none.bundle.state_dict[key][:, :, 0].any()  # random weights everywhere
