"""How much context a block of a volume needs: the block-by-block prediction of a trained
3D model at several halos against the whole volume predicted in memory.

A volume predicted block by block (``core/predict/volume_blocks.py``) reads each block
with a halo of context on every face and keeps the block; the halo's voxels are
predicted twice, which is the block path's cost over one pass (``∏ (b + 2h) / b`` for a
block ``b``). Too little context shows as seams at the block faces. This trains a 3D
model on the real ovule z-stack (dense labels, ``--seconds``), predicts that stack and
the embryo stack (at its own voxel size, ``--rescale off``) in memory and then block by
block with small blocks (many faces) at each halo, and prints per halo: the largest and
the mean difference of the probabilities, the share of the voxels whose class differs
(of the whole volume, and of the voxels on a block face), the foreground IoU against
the true labels of both predictions, the voxels predicted against the volume's, and
those the default block (``VOLUME_BLOCK``) predicts at that halo against one pass.
Blended tiles in memory of at most the blocks' reads (the block and twice the halo),
sharing twice the halo, stand beside each row: the product's in-memory tiling at the
same context.

    python benchmarks/scale/volume_halo.py [--seconds 60] [--block 24 40 40]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common

import argparse
import shutil
import tempfile
import time

import numpy as np
from _common import DATA, add_smoke, need, table

HALOS = ((0, 0, 0), (2, 4, 4), (4, 8, 8), (4, 16, 16), (8, 16, 16), (8, 32, 32))


def stacks(smoke: bool = False) -> dict:
    """name -> (image, instance labels, voxel size): the two real z-stacks, or for the
    smoke run two small synthetic volumes."""
    from napari_unet.core.io.lazy import open_image
    from napari_unet.core.voxels import voxel_size_of

    if smoke:
        from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume

        style = VolumeStyle(count=6)
        return {name: (*nuclei_volume(np.random.default_rng(seed), (16, 48, 48), style),
                       style.voxel_size) for seed, name in enumerate(("ovule", "embryo"))}
    folder = need(DATA / "3d")
    out = {}
    for name in ("ovule_nuclei_a", "embryo_nuclei_8cell"):
        image = open_image(folder / f"{name}_image.tif")
        labels = np.asarray(open_image(folder / f"{name}_labels.tif").data)
        out[name.split("_")[0]] = (np.asarray(image.data), labels, voxel_size_of(image.scale))
    return out


def face_mask(shape, block) -> np.ndarray:
    """Voxels on either side of a block face."""
    mask = np.zeros(shape, bool)
    for axis, (n, b) in enumerate(zip(shape, block)):
        for f in range(b, n, b):
            index = [slice(None)] * 3
            index[axis] = slice(f - 1, f + 1)
            mask[tuple(index)] = True
    return mask


class Reference:
    """One volume's untiled pass, against which a row of the table is measured."""

    def __init__(self, name: str, predictor, probs: np.ndarray, faces: np.ndarray,
                 truth: np.ndarray):
        from napari_unet.core.metrics import foreground_iou

        self.name, self.predictor, self.probs, self.faces = name, predictor, probs, faces
        self.truth = truth
        self.classes = predictor.labels(probs)
        self.iou = foreground_iou(self.classes > 0, truth)

    def row(self, what: str, halo, probs: np.ndarray, seconds: float, predicted: int) -> list:
        from napari_unet.core.config import VOLUME_BLOCK
        from napari_unet.core.metrics import foreground_iou

        diff = np.abs(probs - self.probs).max(axis=0)
        classes = self.predictor.labels(probs)
        differ = classes != self.classes
        cost = np.prod([(b + 2 * h) / b for b, h in zip(VOLUME_BLOCK, halo)])
        return [self.name, what, "x".join(map(str, halo)), f"{diff.max():.3f}",
                f"{diff.mean():.4f}", f"{100 * differ.mean():.3f}",
                f"{100 * differ[self.faces].mean():.2f}", f"{self.iou:.3f}",
                f"{foreground_iou(classes > 0, self.truth):.3f}", f"{seconds:.1f}",
                f"{predicted / classes.size:.2f}x", f"{cost:.2f}x"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="training of the model")
    parser.add_argument("--block", type=int, nargs=3, default=None,
                        metavar=("Z", "Y", "X"),
                        help="the small blocks compared (default 24 40 40)")
    parser.add_argument("--seed", type=int, default=0)
    add_smoke(parser)
    args = parser.parse_args(argv)

    import zarr

    from napari_unet.core.config import VOLUME_BLOCK, TrainOptions
    from napari_unet.core.labels import to_annotations
    from napari_unet.core.models.speed import cpu_name
    from napari_unet.core.predict.volume import VolumePredictor
    from napari_unet.core.predict.volume_block_tasks import BoxGrid
    from napari_unet.core.predict.volume_blocks import _sample as sample_values
    from napari_unet.core.predict.volume_blocks import predict_volume_blocks
    from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training

    data = stacks(args.smoke)
    image, labels, voxel = data["ovule"]
    options = TrainOptions(labels_kind="instance", seconds=args.seconds, device="cpu",
                           seed=args.seed, iterations=3 if args.smoke else None)
    trainer = VolumeTrainer.from_plan(plan_volume_training(
        [image], [to_annotations(labels, "instance")], options, voxel_size=voxel))
    for _ in trainer.fit():
        pass
    bundle = trainer.bundle()
    whole = VolumePredictor(bundle, device="cpu", rescale=False, tile_voxels=10**12)
    halos = HALOS[:2] if args.smoke else HALOS
    block = tuple(args.block or ((8, 24, 24) if args.smoke else (24, 40, 40)))
    rows = []
    work = Path(tempfile.mkdtemp(prefix="napari-unet-halo-"))
    try:
        for name, (volume, truth, vox) in data.items():
            # the block path's normalisation (from a sample of the chunks) for all, so
            # that only the context differs
            stats = [bundle.normalisation.stats(sample_values(volume))]
            ref = Reference(name, whole, whole.probabilities(volume, vox, stats=stats),
                            face_mask(volume.shape, block), truth)

            def row(what, halo, probs, seconds, predicted, ref=ref):
                rows.append(ref.row(what, halo, probs, seconds, predicted))
                print(" ".join(map(str, rows[-1])), flush=True)

            for halo in halos:
                out = work / f"{name}-{'-'.join(map(str, halo))}.ome.zarr"
                probs_path = out.with_name(out.name.replace(".ome", "-p.ome"))
                started = time.perf_counter()
                result = predict_volume_blocks(whole, volume, out, voxel_size=vox,
                                               block=block, halo=halo,
                                               probabilities=probs_path)
                seconds = time.perf_counter() - started
                grid = BoxGrid(volume.shape, block)
                predicted = sum(int(np.prod([b.stop - b.start for b in grid.box(
                    i, halo, least=whole.smallest)])) for i in range(result.blocks))
                row("blocks", halo, np.asarray(zarr.open(str(probs_path), mode="r")["0"]),
                    seconds, predicted)
                # tiles in memory, blended, sharing 2 x halo, of at most the blocks' reads
                tiles = VolumePredictor(bundle, device="cpu", rescale=False,
                                        tile=tuple(b + 2 * h for b, h in zip(block, halo)),
                                        margin=tuple(2 * h for h in halo),
                                        tile_voxels=10**12)
                started = time.perf_counter()
                probs = tiles.probabilities(volume, vox, stats=stats)
                row("tiles", halo, probs, time.perf_counter() - started,
                    tiles.layout(volume.shape).predicted(volume.shape))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table(f"blocks of {'x'.join(map(str, block))} with a halo, and blended tiles in "
                "memory sharing twice the halo, against one "
                f"untiled pass: a 3D model trained {args.seconds:.0f} s on the ovule stack "
                f"({trainer.run_iteration} iterations), {cpu_name()}",
                ["volume", "how", "halo z,y,x", "max |dp|", "mean |dp|", "% differ",
                 "% differ at faces", "IoU whole", "IoU here", "seconds", "voxels",
                 f"cost {'x'.join(map(str, VOLUME_BLOCK))}"],
                rows, [8, 6, 10, 9, 10, 9, 18, 10, 9, 8, 7, 16]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
