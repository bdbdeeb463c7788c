"""Shared helpers of the benchmark scripts: data location and a table printer."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

DATA = Path(os.environ.get("NAPARI_UNET_DATA",
                           Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def timed(fn, device, calls: int = 1):
    """Seconds per call of ``fn`` over ``calls`` calls, with the device's queue drained
    before and after (CUDA runs asynchronously), and the last call's result."""
    import torch

    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = None
    for _ in range(calls):
        out = fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls, out


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"benchmark data not found at {path} (set NAPARI_UNET_DATA)")
    return path


def table(title: str, header: list[str], rows: list[list], widths: list[int] | None = None) -> str:
    widths = widths or [max(len(str(h)), 10) for h in header]
    widths[0] = max(widths[0], *(len(str(r[0])) for r in rows), len(header[0]))

    def fmt(v, w, first):
        if isinstance(v, float):
            v = f"{v:.3f}"
        return f"{v!s:<{w}}" if first else f"{v!s:>{w}}"

    lines = [title, " ".join(fmt(h, w, i == 0) for i, (h, w) in enumerate(zip(header, widths)))]
    for r in rows:
        lines.append(" ".join(fmt(v, w, i == 0) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)
