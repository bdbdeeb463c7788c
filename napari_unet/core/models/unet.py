"""The U-Net of Ronneberger et al. (2015) with padding convolutions.

Vocabulary after milesial/Pytorch-UNet: ``DoubleConv`` (conv-BN-ReLU twice), ``Down``
(max-pool then DoubleConv), ``Up`` (up-sample, pad to the skip connection, concatenate,
DoubleConv) and ``OutConv`` (1x1, one logit per class and pixel). No dense layer, so the
network runs on any image size: ``UNet.forward`` pads the input to a multiple of
``2**depth`` by reflection and crops the logits back to the input's height and width.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from napari_unet.core.config import CPU, UNetConfig


class DoubleConv(nn.Module):
    """(3x3 convolution, batch norm, ReLU) twice."""

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        mid = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Halve the resolution with a 2x2 max-pool, then DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Double the resolution, pad to the skip connection, concatenate, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = True):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        x1 = self.up(x1)
        dy = x2.size(2) - x1.size(2)
        dx = x2.size(3) - x1.size(3)
        if dy or dx:
            x1 = F.pad(x1, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([x2, x1], dim=1))


class OutConv(nn.Module):
    """1x1 convolution: one logit per class and pixel."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

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
    ):
        super().__init__()
        self.config = UNetConfig(in_channels, n_classes, base_channels, depth, bilinear)
        self.in_channels = in_channels
        self.n_classes = n_classes
        self.depth = depth
        factor = 2 if bilinear else 1
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.inc = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            Down(widths[i], widths[i + 1] // (factor if i == depth - 1 else 1))
            for i in range(depth)
        )
        self.ups = nn.ModuleList(
            Up(widths[i + 1], widths[i] // (factor if i > 0 else 1), bilinear)
            for i in reversed(range(depth))
        )
        self.outc = OutConv(widths[0], n_classes)
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

    def _run(self, block: nn.Module, *args: torch.Tensor) -> torch.Tensor:
        if self._checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *args, use_reentrant=False)
        return block(*args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        multiple = 2**self.depth
        ph, pw = (-h) % multiple, (-w) % multiple
        if ph or pw:
            mode = "reflect" if h > ph and w > pw else "replicate"
            x = F.pad(x, [0, pw, 0, ph], mode=mode)
        skips = [self._run(self.inc, x)]
        for down in self.downs:
            skips.append(self._run(down, skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = self._run(up, y, skips.pop())
        logits = self.outc(y)
        return logits[..., :h, :w]
