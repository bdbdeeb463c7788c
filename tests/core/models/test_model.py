import pytest
import torch

from napari_unet.core.models.unet import UNet, UNetConfig


@pytest.mark.parametrize("bilinear", [True, False])
@pytest.mark.parametrize("shape", [(64, 64), (37, 53), (17, 100), (5, 9)])
def test_any_size_gives_logits_of_the_same_size(bilinear, shape):
    model = UNet(in_channels=1, n_classes=3, base_channels=4, depth=3, bilinear=bilinear).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *shape))
    assert out.shape == (2, 3, *shape)
    assert torch.isfinite(out).all()


def test_depth_and_width_set_the_architecture():
    small = UNet(base_channels=4, depth=2)
    big = UNet(base_channels=8, depth=4)
    n_small = sum(p.numel() for p in small.parameters())
    n_big = sum(p.numel() for p in big.parameters())
    assert n_big > 10 * n_small
    assert len(big.downs) == 4 and len(big.ups) == 4
    assert big.config == UNetConfig(1, 2, 8, 4, True)
    assert not any(isinstance(m, torch.nn.Linear) for m in big.modules())


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError):
        UNetConfig(n_classes=1)
    with pytest.raises(ValueError):
        UNetConfig(depth=0)


def _grads(model, x):
    model.zero_grad()
    out = model(x)
    out.square().mean().backward()
    return out.detach(), [p.grad.clone() for p in model.parameters()]


def test_checkpointing_gives_same_outputs_and_gradients():
    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=3).train()
    ref_state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 1, 48, 48)
    out_a, grads_a = _grads(model, x)
    model.load_state_dict(ref_state)
    model.use_checkpointing(True)
    out_b, grads_b = _grads(model, x)
    assert torch.allclose(out_a, out_b, atol=1e-6)
    for a, b in zip(grads_a, grads_b):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def _peak_saved_bytes(model, x):
    """Bytes of activations kept for backward (saved-tensor hooks, CPU-independent)."""
    saved = {"now": 0, "peak": 0}

    def pack(t):
        saved["now"] += t.numel() * t.element_size()
        saved["peak"] = max(saved["peak"], saved["now"])
        return t

    def unpack(t):
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        out = model(x)
    loss = out.square().mean()
    loss.backward()
    return saved["peak"]


def test_checkpointing_lowers_memory_kept_for_backward():
    torch.manual_seed(0)
    model = UNet(base_channels=8, depth=3).train()
    x = torch.randn(2, 1, 64, 64)
    plain = _peak_saved_bytes(model, x)
    model.use_checkpointing(True)
    checkpointed = _peak_saved_bytes(model, x)
    assert checkpointed < 0.5 * plain
