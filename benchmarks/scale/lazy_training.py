"""Training from a stack opened lazily against the same stack in memory.

    python benchmarks/scale/lazy_training.py [--slices 200] [--side 512] [--iterations 30]

Writes a tiled uint16 TIFF stack of synthetic nuclei with annotations on 4 slices, then
in two child processes trains the same small model for the same iterations, once with the
stack read into memory and once opened lazily (a memory limit below its size), and
prints the peak resident memory of each child, the seconds of opening the stack and
building the training data, and of training, and the share of the stack's tiles the lazy run read.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import json
import subprocess
import tempfile
import time

import numpy as np
import tifffile
from _common import add_smoke, table
from bigimage import cpu_name

CHILD = r"""
import json, os, resource, sys, time, threading
import numpy as np
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.train.data import TrainingData
from napari_unet.core.io.lazy import open_image
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.io.sparse import sparse_labels
from napari_unet.core.train.trainer import TrainConfig, Trainer

folder, iterations = sys.argv[1], int(sys.argv[2])
t0 = time.perf_counter()
image = open_image(os.path.join(folder, "stack.tif")).data
read = set()
lazy = not isinstance(image, np.ndarray)
if lazy:
    lock = threading.Lock()
    def record(block, block_info=None):
        if block_info is not None:
            with lock:
                read.add(tuple(block_info[0]["chunk-location"]))
        return block
    total = int(np.prod(image.numblocks))
    image = image.map_blocks(record, dtype=image.dtype)
strokes = np.load(os.path.join(folder, "strokes.npz"))
annotations = sparse_labels(image.shape) if lazy else np.zeros(image.shape, np.uint8)
for key in strokes.files:
    annotations[int(key)] = strokes[key]
data = TrainingData.from_annotations([image], [annotations])
t1 = time.perf_counter()
config = TrainConfig(iterations=iterations, batch_size=4, patch_size=128, validate_every=0)
trainer = Trainer(ModelBundle.new(UNetConfig(n_classes=2, base_channels=8, depth=3)), data,
                  config)
for _ in trainer.fit():
    pass
t2 = time.perf_counter()
print(json.dumps({"lazy": lazy, "build_s": t1 - t0, "train_s": t2 - t1,
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "read": len(read), "total": total if lazy else 0}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=200)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=30)
    add_smoke(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.slices, args.side, args.iterations = 8, 128, 2
    from napari_unet.synthetic import nuclei_slice

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        strokes = {}
        # 4 annotated slices, spread as 10, 60, 110, 160 of 200
        marked = {args.slices // 20 + k * args.slices // 4 for k in range(4)}
        with tifffile.TiffWriter(folder / "stack.tif", bigtiff=True) as tif:
            for z in range(args.slices):
                image, labels = nuclei_slice(rng, (args.side, args.side))
                tif.write(image, tile=(128, 128), compression="zlib", contiguous=False,
                          metadata=None)
                if z in marked:
                    ann = np.zeros(labels.shape, np.uint8)
                    ann[labels > 0] = 2
                    ann[: args.side // 16][labels[: args.side // 16] == 0] = 1
                    strokes[str(z)] = ann
        np.savez(folder / "strokes.npz", **strokes)
        nbytes = args.slices * args.side * args.side * 2
        rows = []
        for limit in (None, nbytes // 4):
            env = dict(__import__("os").environ)
            if limit is not None:
                env["NAPARI_UNET_MAX_IMAGE_BYTES"] = str(limit)
            env["NAPARI_UNET_PRECISION"] = env.get("NAPARI_UNET_PRECISION", "fp32")
            start = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", CHILD, str(folder),
                                  str(args.iterations)], env=env, capture_output=True,
                                 text=True, cwd=tmp)
            if out.returncode:
                sys.exit(out.stderr)
            wall = time.perf_counter() - start
            result = json.loads(out.stdout.strip().splitlines()[-1])
            share = (f"{result['read']} of {result['total']}" if result["lazy"] else "all")
            rows.append(["lazy" if result["lazy"] else "in memory",
                         f"{result['peak_mib']:.0f}", f"{result['build_s']:.2f}",
                         f"{result['train_s']:.1f}", share, f"{wall:.1f}"])
        print(table(
            f"Training {args.iterations} iterations on a {args.slices}x{args.side}x{args.side} "
            f"uint16 stack ({nbytes / 1024**2:.0f} MiB, 128x128 tiles, 4 annotated slices); "
            f"CPU: {cpu_name()}",
            ["stack", "peak RSS MiB", "open+data s", "train s", "tiles read", "wall s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
