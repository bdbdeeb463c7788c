"""Activation checkpointing: peak training memory with and without it, and its speed cost.

    python benchmarks/speed/memory.py [--device cpu|cuda] [--base 32] [--batch 8] [--patch 256]

On CUDA the peak comes from ``torch.cuda.max_memory_allocated``; on the CPU from the
bytes that autograd keeps for backward (saved-tensor hooks), which is what
checkpointing removes. Both runs use the same model, batch and seed, in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse

import torch
import torch.nn.functional as F
from _common import add_smoke, timed

from napari_unet.core.models.unet import UNet


def run(checkpointing: bool, args) -> tuple[float, float]:
    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = UNet(base_channels=args.base, depth=4, n_classes=3).to(dev).train()
    model.use_checkpointing(checkpointing)
    opt = torch.optim.AdamW(model.parameters())
    x = torch.randn(args.batch, 1, args.patch, args.patch, device=dev)
    y = torch.randint(0, 3, (args.batch, args.patch, args.patch), device=dev)
    saved = {"now": 0, "peak": 0}

    def pack(t):
        saved["now"] += t.numel() * t.element_size()
        saved["peak"] = max(saved["peak"], saved["now"])
        return t

    def step():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        saved["now"] = 0

    step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    saved["peak"] = 0
    seconds = timed(step, dev, args.iterations)[0]
    peak = torch.cuda.max_memory_allocated() if dev.type == "cuda" else saved["peak"]
    return peak, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--base", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--patch", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=3)
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        args.base, args.batch, args.patch, args.iterations = 4, 2, 32, 1
    plain = run(False, args)
    ckpt = run(True, args)
    what = "peak allocated" if args.device.startswith("cuda") else "kept for backward"
    print(f"activation checkpointing on {args.device}, base {args.base}, batch {args.batch}, "
          f"patch {args.patch}")
    print(f"{'':<22} {what + ' MiB':>24} {'s/iteration':>12} {'memory':>7} {'time':>6}")
    for name, (peak, sec) in (("without checkpointing", plain), ("with checkpointing", ckpt)):
        print(f"{name:<22} {peak / 1024**2:24.0f} {sec:12.3f} {peak / plain[0]:7.2f} "
              f"{sec / plain[1]:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
