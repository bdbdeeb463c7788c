"""The 3D U-Net: shapes, anisotropic pooling from the voxel size, model files."""

import numpy as np
import pytest
import torch

from napari_unet.core.config import START_MODEL, UNetConfig
from napari_unet.core.errors import ModelFileError
from napari_unet.core.models.checkpoint import ModelBundle, bundle_from_dict, load_bundle
from napari_unet.core.models.unet import Conv3d, UNet
from napari_unet.core.voxels import patch_shape, volume_pools

ANISO = ((1, 2, 2), (2, 2, 2))


@pytest.mark.parametrize("bilinear", [True, False])
@pytest.mark.parametrize("shape", [(8, 32, 32), (5, 21, 18), (3, 9, 40)])
def test_any_volume_gives_logits_of_the_same_size(bilinear, shape):
    model = UNet(1, 3, base_channels=4, depth=2, bilinear=bilinear, dims=3,
                 pools=ANISO).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *shape))
    assert out.shape == (2, 3, *shape)
    assert torch.isfinite(out).all()


def test_z_is_not_pooled_while_it_is_coarser_than_xy():
    # The ovule stack: z 0.284 um, xy 0.127 um (2.2x): one level without z pooling.
    assert volume_pools((0.284, 0.127, 0.127), 3) == ((1, 2, 2), (2, 2, 2), (2, 2, 2))
    assert volume_pools((1.0, 0.2, 0.2), 3) == ((1, 2, 2), (1, 2, 2), (2, 2, 2))
    assert volume_pools((0.5, 0.5, 0.5), 2) == ((2, 2, 2), (2, 2, 2))
    assert volume_pools(None, 2) == ((2, 2, 2), (2, 2, 2))
    model = UNet(1, 2, 4, 3, dims=3, pools=volume_pools((0.284, 0.127, 0.127), 3))
    assert model.downs[0].maxpool_conv[0].kernel_size == (1, 2, 2)
    assert model.downs[1].maxpool_conv[0].kernel_size == (2, 2, 2)
    assert model.config.multiple == (4, 8, 8)


def test_patches_are_shaped_by_the_voxel_size():
    pools = volume_pools((0.284, 0.127, 0.127), 3)
    z, y, x = patch_shape(64, (0.284, 0.127, 0.127), pools, max_depth=16)
    assert (y, x) == (64, 64) and z == 16  # 64 / 2.2 = 29 slices, capped at 16
    z, _, _ = patch_shape(64, (0.284, 0.127, 0.127), pools, max_depth=64)
    assert z == 28  # as deep as wide in micrometres, a multiple of the z pooling (4)
    assert patch_shape(64, (0.2, 0.2, 0.2), volume_pools(None, 3), max_depth=64)[0] == 64


def test_bad_pools_are_refused():
    with pytest.raises(ValueError):
        UNetConfig(depth=2, dims=3, pools=((1, 2, 2),))
    with pytest.raises(ValueError):
        UNetConfig(depth=1, dims=3, pools=((3, 2, 2),))
    with pytest.raises(ValueError):
        UNetConfig(dims=4)


def test_a_3d_model_file_rebuilds_the_same_net(tmp_path):
    config = UNetConfig(1, 3, 4, 2, dims=3, pools=ANISO)
    bundle = ModelBundle.new(config, "instance", seed=3, voxel_size=(0.3, 0.13, 0.13))
    bundle.save(tmp_path / "m.pt")
    loaded = load_bundle(tmp_path / "m.pt")
    assert loaded.config == config and loaded.dims == 3
    assert loaded.voxel_size == (0.3, 0.13, 0.13)
    x = torch.randn(1, 1, 6, 20, 20)
    with torch.no_grad():
        assert torch.equal(bundle.build_model().eval()(x), loaded.build_model().eval()(x))


def test_2d_model_files_stay_as_they_were(tmp_path):
    bundle = ModelBundle.new(UNetConfig(1, 2, 4, 2))
    payload = bundle.to_dict()
    assert set(payload["architecture"]) == {"in_channels", "n_classes", "base_channels",
                                             "depth", "bilinear"}
    assert "voxel_size" not in payload
    start = load_bundle(START_MODEL)  # the shipped start model (a 2D file)
    assert start.dims == 2 and start.voxel_size is None
    model = start.build_model()
    assert isinstance(model.inc.double_conv[0], torch.nn.Conv2d)


def test_a_damaged_voxel_size_is_refused():
    payload = ModelBundle.new(UNetConfig(1, 2, 4, 1, dims=3, pools=((1, 2, 2),)),
                              voxel_size=(1.0, 0.5, 0.5)).to_dict()
    for bad in ([1.0, 0.0, 0.5], [float("nan"), 1, 1], [1, 1], "1,1,1", [True, 1, 1]):
        payload["voxel_size"] = bad
        with pytest.raises(ModelFileError, match="voxel size"):
            bundle_from_dict(payload, "m.pt")


@pytest.mark.parametrize("bias,kernel,padding", [(False, 3, 1), (True, 1, 0)])
def test_the_cpu_convolution_has_torchs_gradients(bias, kernel, padding):
    torch.manual_seed(0)
    fast = Conv3d(3, 4, kernel, padding=padding, bias=bias).double()
    ref = torch.nn.Conv3d(3, 4, kernel, padding=padding, bias=bias).double()
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(2, 3, 5, 7, 6, dtype=torch.double, requires_grad=True)
    g = torch.randn(2, 4, 5, 7, 6, dtype=torch.double)
    fast(x).backward(g)
    grads = [x.grad.clone(), fast.weight.grad.clone()] + ([fast.bias.grad] if bias else [])
    x.grad = None
    ref(x).backward(g)
    expected = [x.grad, ref.weight.grad] + ([ref.bias.grad] if bias else [])
    for a, b in zip(grads, expected):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("bias,kernel,padding", [(False, 3, 1), (True, 1, 0)])
def test_the_cpu_convolution_predicts_as_torchs(bias, kernel, padding):
    # one thin volume: the shape for which PyTorch would take its slow im2col kernel
    torch.manual_seed(0)
    fast = Conv3d(16, 8, kernel, padding=padding, bias=bias)
    ref = torch.nn.Conv3d(16, 8, kernel, padding=padding, bias=bias)
    ref.load_state_dict(fast.state_dict())
    x = torch.randn(1, 16, 4, 24, 20)
    with torch.no_grad():
        for memory_format in (torch.contiguous_format, torch.channels_last_3d):
            got = fast(x.contiguous(memory_format=memory_format))
            assert got.shape == (1, 8, 4, 24, 20)
            np.testing.assert_allclose(got.numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims,shape", [(2, (40, 36)), (3, (8, 24, 20))])
def test_folding_the_batch_norms_keeps_the_outputs(dims, shape):
    torch.manual_seed(0)
    model = UNet(1, 3, base_channels=4, depth=2, dims=dims,
                 pools=ANISO if dims == 3 else None)
    for m in model.modules():  # statistics a training would have left
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(2, 1, *shape)
    with torch.no_grad():
        before = model(x)
        folded = model.fold_batch_norms()
        after = folded(x)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in folded.modules())
    assert not folded.training
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dims, shape, bilinear", [(2, (24, 40), True), (3, (6, 20, 28), True),
                                                   (3, (8, 16, 16), False)])
def test_inference_without_the_concatenation_gives_the_same_outputs(dims, shape, bilinear):
    """Under no_grad each Up block of a 3D model convolves its two parts apart and sums
    them: the same logits as the convolution of their concatenation, which training
    (and 2D) keeps."""
    torch.manual_seed(1)
    model = UNet(1, 3, base_channels=4, depth=2, dims=dims, bilinear=bilinear,
                 pools=ANISO if dims == 3 else None).eval()
    x = torch.randn(2, 1, *shape)
    concatenated = model(x).detach()  # grad enabled: the concatenation
    with torch.no_grad():
        summed = model(x)
        folded = model.fold_batch_norms()(x)
    torch.testing.assert_close(summed, concatenated, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(folded, concatenated, rtol=1e-4, atol=1e-5)
