"""The U-Net of Ronneberger et al. (2015) with padding convolutions.

Vocabulary after milesial/Pytorch-UNet: ``DoubleConv`` (conv-BN-ReLU twice), ``Down``
(max-pool then DoubleConv), ``Up`` (up-sample, pad to the skip connection, concatenate,
DoubleConv) and ``OutConv`` (1x1, one logit per class and pixel). No dense layer, so the
network runs on any image size: ``UNet.forward`` pads the input to a multiple of
``2**depth`` by reflection and crops the logits back to the input's height and width.

With ``dims=3`` the same blocks are built of ``Conv3d`` / ``MaxPool3d`` / trilinear
up-sampling (or ``ConvTranspose3d``) for volumes (B, C, Z, Y, X); ``pools`` gives each
level's pooling per axis, e.g. (1, 2, 2) at the levels where z is still coarser than
xy, so an anisotropic volume is not pooled along z before its voxels are about cubic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from napari_unet.core.config import CPU, UNetConfig


class _Conv3dCPU(torch.autograd.Function):
    """A stride-1 3D convolution whose weight gradient is itself one convolution (of the
    input by the output gradient, batch and channels swapped): on the CPU, PyTorch's own
    Conv3d weight gradient takes about 7x the time of its forward pass, this about 1x."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.has_bias = padding, bias is not None
        return F.conv3d(x, weight, bias, padding=padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv_transpose3d(grad, weight, padding=ctx.padding)
        if ctx.needs_input_grad[1]:
            grad_w = F.conv3d(x.transpose(0, 1), grad.transpose(0, 1),
                              padding=ctx.padding).transpose(0, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(dim=(0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None


def _has_mkldnn() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch, "mkldnn_convolution")


_MKLDNN = _has_mkldnn()


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters, same results) that runs faster on the CPU:
    training computes its weight gradient as one convolution (:class:`_Conv3dCPU`), and
    inference always takes oneDNN's kernel. PyTorch picks its own im2col kernel, about
    10x slower, for a single volume whose channels x slices x rows are at most 20,480
    (e.g. 16 channels of 4 x 256 x 256: a thin slab, the deep levels of any tile).
    Elsewhere, and under autocast, exactly ``nn.Conv3d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with(x, self.weight, self.bias)

    def forward_with(self, x: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None) -> torch.Tensor:
        """This convolution with ``weight`` and ``bias`` instead of its own (the Up
        blocks' parts at inference), by the same choice of kernel."""
        if (x.device.type == "cpu" and self.stride == (1, 1, 1)
                and self.dilation == (1, 1, 1) and self.groups == 1
                and self.padding_mode == "zeros" and isinstance(self.padding, tuple)
                and not torch.is_autocast_enabled("cpu")):
            if torch.is_grad_enabled():
                return _Conv3dCPU.apply(x, weight, bias, self.padding)
            if _MKLDNN and x.dtype == torch.float32 == weight.dtype:
                return torch.mkldnn_convolution(x, weight.contiguous(), bias, self.padding,
                                                self.stride, self.dilation, self.groups)
        return self._conv_forward(x, weight, bias)


_CONV = {2: nn.Conv2d, 3: Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_UPCONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
_LINEAR = {2: "bilinear", 3: "trilinear"}


class DoubleConv(nn.Module):
    """(3x3 (x3) convolution, batch norm, ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None,
                 dims: int = 2):
        super().__init__()
        mid = mid_channels or out_channels
        conv, norm = _CONV[dims], _NORM[dims]
        self.double_conv = nn.Sequential(
            conv(in_channels, mid, kernel_size=3, padding=1, bias=False),
            norm(mid),
            nn.ReLU(inplace=True),
            conv(mid, out_channels, kernel_size=3, padding=1, bias=False),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Halve the resolution with a 2x2 max-pool (in 3D: ``pool`` per axis), then
    DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, dims: int = 2,
                 pool: int | tuple[int, ...] = 2):
        super().__init__()
        self.maxpool_conv = nn.Sequential(_POOL[dims](pool),
                                          DoubleConv(in_channels, out_channels, dims=dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Double the resolution (in 3D: ``scale`` per axis), pad to the skip connection,
    concatenate, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True,
                 dims: int = 2, scale: int | tuple[int, ...] = 2):
        super().__init__()
        if isinstance(scale, tuple):
            scale = tuple(float(f) for f in scale) if bilinear else scale
        if bilinear:
            self.up = nn.Upsample(scale_factor=scale, mode=_LINEAR[dims], align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2, dims=dims)
        else:
            self.up = _UPCONV[dims](in_channels, in_channels // 2, kernel_size=scale,
                                    stride=scale)
            self.conv = DoubleConv(in_channels, out_channels, dims=dims)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        pad: list[int] = []
        for axis in range(x2.ndim - 1, 1, -1):  # F.pad wants the last axis first
            d = x2.size(axis) - x1.size(axis)
            pad += [d // 2, d - d // 2]
        if any(pad):
            x1 = F.pad(x1, pad)
        if torch.is_grad_enabled() or x2.ndim != 5:
            return self.conv(torch.cat([x2, x1], dim=1))
        # 3D inference: the first convolution of the concatenation as the sum of one per
        # part (the same result), so the concatenation's copy of both never exists and
        # the up-sampled part is freed before the second convolution. A forward pass on
        # a 2-core CPU then peaks at 340-380 bytes per voxel instead of 510 (the last
        # level's features dominate it) in the same time; in 2D it costs 6-8 % more time
        # and memory rarely limits, so 2D keeps the concatenation.
        layers = self.conv.double_conv
        first, weight = layers[0], layers[0].weight
        split = x2.size(1)
        y = first.forward_with(x2, weight[:, :split], first.bias)
        y += first.forward_with(x1, weight[:, split:], None)
        del x1
        for layer in layers[1:]:
            y = layer(y)
        return y


class OutConv(nn.Module):
    """1x1 convolution: one logit per class and pixel."""

    def __init__(self, in_channels: int, out_channels: int, dims: int = 2):
        super().__init__()
        self.conv = _CONV[dims](in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """U-Net with ``depth`` poolings and ``base_channels`` features at full resolution.

    With ``bilinear=True`` the deepest features are halved (the ``factor`` of the
    reference implementation) so that bilinear up-sampling, which keeps the channel
    count, meets the skip connections; with ``bilinear=False`` a transposed convolution
    halves the channels instead.
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 2,
        base_channels: int = CPU.base_channels,
        depth: int = CPU.depth,
        bilinear: bool = True,
        dims: int = 2,
        pools: tuple[tuple[int, ...], ...] | None = None,
    ):
        super().__init__()
        self.config = UNetConfig(in_channels, n_classes, base_channels, depth, bilinear,
                                 dims, pools)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        self.dims = dims
        factor = 2 if bilinear else 1
        widths = [base_channels * 2**i for i in range(depth + 1)]
        # 2D: the plain factor 2 (modules as before); 3D: each level's factors per axis.
        levels = [2] * depth if dims == 2 and pools is None else list(self.config.level_pools)
        self.inc = DoubleConv(in_channels, widths[0], dims=dims)
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1] // (factor if i == depth - 1 else 1), dims, levels[i])
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i] // (factor if i > 0 else 1), bilinear, dims, levels[i])
            for i in reversed(range(depth))
        )
        self.outc = OutConv(widths[0], n_classes, dims)
        self._checkpointing = False

    @classmethod
    def from_config(cls, config: UNetConfig | dict) -> UNet:
        if isinstance(config, dict):
            config = UNetConfig(**config)
        return cls(**config.to_dict())

    def use_checkpointing(self, enabled: bool = True) -> UNet:
        """Recompute each block's activations during backward instead of storing them.

        The blocks' ``forward`` calls are wrapped in ``torch.utils.checkpoint.checkpoint``
        (a function, as it expects, not a module attribute), so peak memory during
        training falls at the cost of one more forward pass. Inactive in eval mode and
        under ``torch.no_grad()``.
        """
        self._checkpointing = enabled
        return self

    @property
    def checkpointing(self) -> bool:
        return self._checkpointing

    def fold_batch_norms(self) -> UNet:
        """For inference: fold each batch norm (its running statistics) into the
        convolution before it (``torch.nn.utils.fusion.fuse_conv_bn_eval``), in place.
        The outputs are the same up to rounding (about 1e-7), with one pass over the
        activations fewer per convolution: on a 2-core CPU a 3D tile predicts in
        0.95-0.99x the time (``benchmarks/quality/volumes.py``'s speed rows) and a block
        of a volume peaks about 12 % lower (``benchmarks/scale/volume_memory.py``). The
        model is in eval mode afterwards and is not for training: its weights are no
        longer those of the checkpoint."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        self.eval()
        for module in self.modules():
            if isinstance(module, DoubleConv):
                layers = module.double_conv
                for i in (0, 3):
                    if isinstance(layers[i + 1], nn.modules.batchnorm._BatchNorm):
                        layers[i] = fuse_conv_bn_eval(layers[i], layers[i + 1])
                        layers[i + 1] = nn.Identity()
        return self

    def _run(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if self._checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims == 3:
            return self._forward_volume(x)
        h, w = x.shape[-2:]
        multiple = 2**self.depth
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            x = F.pad(x, [0, pw, 0, ph], mode=mode)
        return self._unet(x)[..., :h, :w]

    def _forward_volume(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, Z, Y, X): padded to the pools' multiples by reflection, cropped back."""
        sizes = x.shape[-3:]
        pads = [(-n) % m for n, m in zip(sizes, self.config.multiple)]
        if any(pads):
            mode = "reflect" if all(n > p for n, p in zip(sizes, pads)) else "replicate"
            x = F.pad(x, [v for p in reversed(pads) for v in (0, p)], mode=mode)
        d, h, w = sizes
        return self._unet(x)[..., :d, :h, :w]

    def _unet(self, x: torch.Tensor) -> torch.Tensor:
        skips = [self._run(self.inc, x)]
        for down in self.downs:
            skips.append(self._run(down, skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = self._run(up, y, skips.pop())
        return self.outc(y)
