"""Shared helpers of the benchmark scripts: data location, a table printer, the peak
resident memory of a block of code, and the smoke mode every script has (``--smoke``: tiny inputs, a few seconds, figures that mean nothing;
``tests/benchmarks/test_smoke.py`` runs each script so)."""

from __future__ import annotations

import os
import sys
import threading
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


#: Set by :func:`use_smoke_data`: a synthetic miniature of ``DATA`` that :func:`need` reads.
SMOKE_DATA: Path | None = None


def add_smoke(parser) -> None:
    """The ``--smoke`` flag of a benchmark script. Given, it also fixes the CPU settings
    (``NAPARI_UNET_PRECISION=fp32``, ``NAPARI_UNET_THREADS=1`` unless set) so that no run
    measures this CPU's speed first: tiny inputs gain nothing from threads, and the
    measurement (training steps of the default model) would take longer than the run."""
    import argparse

    class Smoke(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            os.environ.setdefault("NAPARI_UNET_PRECISION", "fp32")
            os.environ.setdefault("NAPARI_UNET_THREADS", "1")
            setattr(namespace, self.dest, True)

    parser.add_argument("--smoke", action=Smoke, nargs=0, default=False,
                        help="tiny inputs, a few seconds: checks that the script runs "
                             "(its figures mean nothing)")


def use_smoke_data() -> Path:
    """Write (once per process) a miniature of ``../shared/data`` with the same file names
    into a temporary folder: synthetic nuclei for ``dsb2018/`` (40 images) and its
    ``varied/`` groups, synthetic membranes for ``isbi2012/`` (25 slices), all 128 px
    across; from then on :func:`need` maps every path under ``DATA`` there."""
    global SMOKE_DATA
    if SMOKE_DATA is not None:
        return SMOKE_DATA
    import atexit
    import shutil
    import tempfile

    import numpy as np
    import tifffile

    from napari_unet.synthetic import nuclei_slice

    root = Path(tempfile.mkdtemp(prefix="napari-unet-smoke-data-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    rng = np.random.default_rng(0)

    def nuclei(n: int, shape=(128, 128), invert=False):
        pairs = [nuclei_slice(rng, shape) for _ in range(n)]
        images = np.stack([(p[0] / max(int(p[0].max()), 1) * 255).astype(np.uint8)
                           for p in pairs])
        return (255 - images if invert else images), np.stack([p[1] for p in pairs])

    dsb = root / "dsb2018"
    (dsb / "varied").mkdir(parents=True)
    images, labels = nuclei(40)
    tifffile.imwrite(dsb / "fluo_image.tif", images)
    tifffile.imwrite(dsb / "fluo_labels.tif", labels)
    (dsb / "ids.txt").write_text("\n".join(f"synthetic-{i}" for i in range(40)) + "\n")
    for group, n, shape, invert in (("360x360", 4, (128, 128), False),
                                    ("512x640", 3, (128, 160), False),
                                    ("1024x1024", 2, (128, 128), True)):
        images, labels = nuclei(n, shape, invert)
        tifffile.imwrite(dsb / "varied" / f"{group}_image.tif", images)
        tifffile.imwrite(dsb / "varied" / f"{group}_labels.tif", labels)
    from scipy import ndimage as ndi
    from skimage.segmentation import find_boundaries

    isbi = root / "isbi2012"
    isbi.mkdir()
    slices, membranes = [], []
    for _ in range(25):
        seeds = np.zeros((128, 128), np.int32)
        points = rng.integers(0, 128, (30, 2))
        seeds[points[:, 0], points[:, 1]] = np.arange(1, 31)
        _, (iy, ix) = ndi.distance_transform_edt(seeds == 0, return_indices=True)
        membrane = find_boundaries(seeds[iy, ix], mode="thick")
        image = 180 - 120 * membrane + rng.normal(0, 15, membrane.shape)
        slices.append(np.clip(image, 0, 255).astype(np.uint8))
        membranes.append(membrane.astype(np.uint8) * 255)
    tifffile.imwrite(isbi / "train_image.tif", np.stack(slices))
    tifffile.imwrite(isbi / "train_membrane.tif", np.stack(membranes))
    SMOKE_DATA = root
    return root


def need(path: Path) -> Path:
    if SMOKE_DATA is not None and path.is_relative_to(DATA):
        path = SMOKE_DATA / path.relative_to(DATA)
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


class PeakRSS:
    """Peak resident memory of this process during a ``with`` block, sampled from
    ``/proc/self/status`` (VmRSS) every ``every`` seconds in a thread: ``peak`` (bytes)
    and ``mb`` (the rise above the start, MB). Linux only (0 elsewhere)."""

    def __init__(self, every: float = 0.005):
        self.every = every

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        try:
            lines = Path("/proc/self/status").read_text().splitlines()
        except OSError:
            return 0
        for line in lines:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        self.mb = (self.peak - self.base) / 1e6
