"""Volumes: a 3D model against a 2D model with objects stitched across z, against today's
per-slice objects and a plain 3D U-Net loop, at equal seconds; and the speed rows.

    python benchmarks/quality/volumes.py [--seconds 60 150] [--seeds 2] [--smoke]
    python benchmarks/quality/volumes.py --sets halves --methods 3d plain --seconds 300
    python benchmarks/quality/volumes.py --speed-only [--speed-shape 32 256 256]

Quality: on ``shared/data/3d`` (train on one stack, score on the other, both ways; the
two differ 6x in voxel size), on the ovule stack's two halves (train on one, score the
other, both ways) and on synthetic volumes with more objects
(:mod:`napari_unet.synthetic_volume`, train on one, score on another), from dense labels
(instance masks -> background / interior / boundary) and from strokes on 3 slices drawn
by :func:`~napari_unet.synthetic_volume.starter_strokes`. Scores: foreground IoU of the
volume, F1@0.5 of 3D objects, predicted / true foreground; mean +- sd over seeds.

Speed: training voxels per second of the 3D trainer against the plain loop at the same
patch volume; 3D augmentation on the device against scipy's ``map_coordinates``; tiled
3D prediction with the product's tiles against one untiled pass of a volume that fits
(time, voxels predicted, peak memory rise, the largest difference of the
probabilities, the peak of one tile); the slab preview of 256 x 256 slices (the
volume's normalisation computed once, as the plugin does). ``--speed-only`` prints
these rows alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet3d

import argparse
import os
import platform
import time

import numpy as np
from _common import DATA, PeakRSS, table, timed
from plain_unet3d import predict_plain3d, train_plain3d

from napari_unet.core.config import TrainOptions
from napari_unet.core.labels import to_annotations
from napari_unet.core.metrics import foreground_iou, instance_scores
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume, starter_strokes

METHODS = ("3D model", "2D + 3D watershed", "2D + stitching", "2D per slice (today)",
           "plain 3D loop")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{platform.processor() or 'CPU'}, {os.cpu_count()} cores"


def scores(objects, labels, truth) -> tuple[float, float, float]:
    fg_t = max(int((truth > 0).sum()), 1)
    return (foreground_iou(labels > 0, truth), instance_scores(objects, truth, volume=True)["f1"],
            int((labels > 0).sum()) / fg_t)


def run_3d(train, test, kind, seconds, seed, rescale, max_iterations=None, options=None,
           probabilities=False):
    """The 3D model trained on ``train``, predicted on ``test``: its labels, objects and
    steps, and with ``probabilities`` its probabilities (K, Z, Y, X)."""
    from napari_unet.core.predict.volume import VolumePredictor
    from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training

    (img, target, voxel), (timg, _, tvoxel) = train, test
    options = TrainOptions(labels_kind=kind, seconds=seconds, iterations=max_iterations,
                           device="cpu", seed=seed, **(options or {}))
    trainer = VolumeTrainer.from_plan(plan_volume_training([img], [target], options,
                                                           voxel_size=voxel))
    for _ in trainer.fit():
        pass
    predictor = VolumePredictor(trainer.bundle(), device="cpu", rescale=rescale)
    result = predictor.predict(timg, tvoxel, instances=True, probabilities=probabilities)
    if probabilities:
        return (result.labels, result.instances, trainer.run_iteration,
                np.moveaxis(result.probabilities, 1, 0))
    return result.labels, result.instances, trainer.run_iteration


def run_2d(train, test, kind, seconds, seed, max_iterations=None, options=None):
    from napari_unet.core.predict.objects import drop_small
    from napari_unet.core.predict.tiles import Predictor
    from napari_unet.core.predict.volume_instances import stacked_instances, stitch_slices
    from napari_unet.core.train.plan import plan_training
    from napari_unet.core.train.trainer import Trainer

    (img, target, _), (timg, _, tvoxel) = train, test
    options = TrainOptions(labels_kind=kind, seconds=seconds, iterations=max_iterations,
                           device="cpu", seed=seed, **(options or {}))
    plan = plan_training([img], [target], options)
    trainer = Trainer(plan.bundle, plan.data, plan.config)
    for _ in trainer.fit():
        pass
    bundle = trainer.bundle()
    predictor = Predictor(bundle, device="cpu")
    result = predictor.predict(timg, instances=True, probabilities=True)
    per_slice = result.instances
    stitched = drop_small(stitch_slices(per_slice), 10)
    stacked = stacked_instances(result, tvoxel, splits=predictor.splits_instances)
    return result.labels, stacked, stitched, per_slice, trainer.run_iteration


#: What ``--methods`` picks: the 3D model, the 2D model's rows, the plain 3D loop.
METHOD_GROUPS = ("3d", "2d", "plain")


def compare(name, train, test, seconds, seed, kind, rescale=True, max_iterations=None,
            methods=METHOD_GROUPS, options=None):
    """One row per method: (method, iou, f1, ratio, iterations); ``options`` (e.g.
    ``{"intensity": 0.6}``) go to napari-unet's own runs, not to the plain loop."""
    truth = test[1]
    rows = []
    if "3d" in methods:
        labels, objects, its = run_3d(train, test, kind, seconds, seed, rescale,
                                      max_iterations, options)
        rows.append(("3D model", *scores(objects, labels, truth), its))
    if "2d" in methods:
        labels, stacked, stitched, per_slice, its = run_2d(train, test, kind, seconds, seed,
                                                           max_iterations, options)
        rows.append(("2D + 3D watershed", *scores(stacked, labels, truth), its))
        rows.append(("2D + stitching", *scores(stitched, labels, truth), its))
        rows.append(("2D per slice (today)", *scores(per_slice, labels, truth), its))
    if "plain" in methods:
        model, its = train_plain3d(train[0], train[1], seconds, seed=seed,
                                   n_classes=int(train[1].max()),
                                   max_iterations=max_iterations)
        labels, objects = predict_plain3d(model, test[0])
        rows.append(("plain 3D loop", *scores(objects, labels, truth), its))
    return rows


def real_pairs():
    from napari_unet.core.io.lazy import open_image
    from napari_unet.core.voxels import voxel_size_of

    folder = DATA / "3d"
    if not folder.is_dir():
        return {}
    stacks = {}
    for name in ("ovule_nuclei_a", "embryo_nuclei_8cell"):
        image = open_image(folder / f"{name}_image.tif")
        labels = np.asarray(open_image(folder / f"{name}_labels.tif").data)
        stacks[name.split("_")[0]] = (np.asarray(image.data), labels,
                                      voxel_size_of(image.scale))
    pairs = {"ovule -> embryo": (stacks["ovule"], stacks["embryo"]),
             "embryo -> ovule": (stacks["embryo"], stacks["ovule"])}
    image, labels, voxel = stacks["ovule"]  # one kind: train on one half, score the other
    half = image.shape[2] // 2
    left = (image[:, :, :half], labels[:, :, :half], voxel)
    right = (image[:, :, half:], labels[:, :, half:], voxel)
    pairs["ovule x < 50 -> x >= 50"] = (left, right)
    pairs["ovule x >= 50 -> x < 50"] = (right, left)  # both ways: two folds of one kind
    return pairs


def synthetic_pair(seed: int, shape, count: int):
    style = VolumeStyle(count=count)
    a = nuclei_volume(np.random.default_rng(1000 + seed), shape, style)
    b = nuclei_volume(np.random.default_rng(2000 + seed), shape, style)
    return (a[0], a[1], style.voxel_size), (b[0], b[1], style.voxel_size)


def with_targets(train, kind, seed):
    img, labels, voxel = train
    if kind == "instance":
        return img, to_annotations(labels, "instance"), voxel
    return img, starter_strokes(np.random.default_rng(seed), labels), voxel


# ------------------------------------------------------------------------------ speed
def speed_rows(smoke: bool, shape=(32, 256, 256)) -> list[list]:
    import torch
    from scipy.ndimage import map_coordinates, zoom

    from napari_unet.core.config import AugmentConfig, UNetConfig
    from napari_unet.core.models.checkpoint import ModelBundle
    from napari_unet.core.predict.volume import VolumePredictor
    from napari_unet.core.train.augment3d import VolumeAugmenter
    from napari_unet.core.train.volume import VolumeTrainer, plan_volume_training

    rows = []
    patch, n_it = (16, 64, 64), (2 if smoke else 6)
    rng = np.random.default_rng(0)
    config = UNetConfig(1, 2, 16, 3, dims=3, pools=((1, 2, 2), (2, 2, 2), (2, 2, 2)))
    bundle = ModelBundle.new(config, voxel_size=(0.5, 0.2, 0.2))
    state, gen = dict(bundle.state_dict), torch.Generator().manual_seed(0)
    for key, value in state.items():  # statistics of a trained model: tiles not all alike
        if key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
    bundle.state_dict = state
    shape = (16, 96, 96) if smoke else tuple(shape)
    big = rng.normal(100, 10, shape).astype(np.float32)
    # the product's tiles (in the smoke run: a budget small enough for several)
    tiled = VolumePredictor(bundle, device="cpu", tile_voxels=16 * 48 * 48 if smoke else None)
    whole = VolumePredictor(bundle, device="cpu", tile_voxels=10**12)
    layout = tiled.layout(shape)
    # tiled first: the rise of the resident memory over what the process held before
    with PeakRSS() as m_tiled:
        t0 = time.perf_counter()
        p_tiled = tiled.probabilities(big)
        t_tiled = time.perf_counter() - t0
    with PeakRSS() as m_whole:
        t0 = time.perf_counter()
        p_whole = whole.probabilities(big)
        t_whole = time.perf_counter() - t0
    name = "x".join(map(str, shape))
    rows.append([f"prediction {name} s (tiled vs one pass)", f"{t_tiled:.1f}",
                 f"{t_whole:.1f}", f"{t_tiled / t_whole:.2f}x (target <= 1.3x)"])
    rows.append([f"  {len(layout.corners)} tiles of {'x'.join(map(str, layout.shape))}, "
                 f"margin {'x'.join(map(str, layout.margin))}: voxels predicted", "",
                 "", f"{layout.predicted(shape) / np.prod(shape):.2f}x"])
    rows.append(["  peak memory rise MB (tiled vs one pass)", f"{m_tiled.mb:.0f}",
                 f"{m_whole.mb:.0f}", f"max |dp| {np.abs(p_tiled - p_whole).max():.3f}"])
    del p_tiled, p_whole, big
    one = tuple(min(t, n) for t, n in zip(layout.shape, shape))
    with PeakRSS() as m_tile:
        tiled.probabilities(rng.normal(100, 10, one).astype(np.float32))
    rows.append([f"  peak memory rise MB of one tile {'x'.join(map(str, one))}",
                 f"{m_tile.mb:.0f}", "", ""])

    # the same tile through the model as trained (batch norms apart), the rest alike
    as_trained = VolumePredictor(bundle, device="cpu", tile_voxels=10**12,
                                 model=bundle.build_model().to(memory_format=torch.channels_last_3d))
    as_trained.channels_last = True
    x_one = tiled.normalised(rng.normal(100, 10, one).astype(np.float32))
    t_folded, t_trained = (min(timed(lambda p=p: p._forward(x_one), "cpu")[0]
                               for _ in range(3)) for p in (tiled, as_trained))
    rows.append([f"  one tile {'x'.join(map(str, one))} s (batch norms folded vs not)",
                 f"{t_folded:.2f}", f"{t_trained:.2f}", f"{t_folded / t_trained:.2f}x"])

    side = 96 if smoke else 256
    vol2 = rng.normal(100, 10, (40, side, side)).astype(np.float32)
    t0 = time.perf_counter()
    stats = tiled.volume_stats(vol2)  # once per volume (the plugin keeps them)
    t_stats = time.perf_counter() - t0
    tiled.slab(vol2, 20, stats=stats)
    times = []
    for _ in range(1 if smoke else 3):
        t0 = time.perf_counter()
        tiled.slab(vol2, 20, stats=stats)
        times.append(time.perf_counter() - t0)
    start, stop = tiled.slab_range(len(vol2), 20)
    rows.append([f"slab preview of {side}x{side} slices ({stop - start} slices), s",
                 f"{np.median(times):.2f}", "", "target <= 1 s"])
    rows.append(["  normalisation of the volume, once per volume, s", f"{t_stats:.2f}", "",
                 ""])
    vol = rng.normal(100, 10, (40, 96, 96)).astype(np.float32)
    ann = np.zeros(vol.shape, np.uint8)
    ann[10:30, 20:60, 20:60] = 1
    ann[15:25, 30:50, 30:50] = 2
    options = TrainOptions(labels_kind="semantic", iterations=n_it + 1, device="cpu")
    trainer = VolumeTrainer.from_plan(plan_volume_training([vol], [ann], options,
                                                           voxel_size=(0.5, 0.2, 0.2)))
    times = []
    for p in trainer.fit():
        times.append(p.elapsed)
    ours = (times[-1] - times[0]) / n_it
    t0 = time.perf_counter()
    train_plain3d(vol, ann, 1e9, patch=patch, max_iterations=1)
    t1 = time.perf_counter()
    train_plain3d(vol, ann, 1e9, patch=patch, max_iterations=n_it + 1)
    plain = (time.perf_counter() - t1 - (t1 - t0)) / n_it
    voxels = 2 * int(np.prod(patch))
    rows.append(["training voxels/s (3D trainer vs plain loop)", f"{voxels / ours:,.0f}",
                 f"{voxels / plain:,.0f}", f"{plain / ours:.2f}x (target >= 0.9x)"])

    cfg = AugmentConfig(elastic_sigma=4.0, elastic_grid=32, intensity=0.0, noise=0.0)
    aug = VolumeAugmenter(cfg, seed=0, anisotropy=2.5)
    x = torch.from_numpy(rng.normal(size=(2, 1, *patch)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, (2, *patch)))
    aug(x, y)
    t0 = time.perf_counter()
    for _ in range(n_it):
        aug(x, y)
    t_ours = (time.perf_counter() - t0) / n_it
    t0 = time.perf_counter()
    for _ in range(max(1, n_it // 2)):
        for b in range(2):
            coarse = rng.normal(size=(3, 3, 3, 3)) * np.array([4 / 2.5, 4, 4])[:, None, None,
                                                                           None]
            field = [zoom(c, np.array(patch) / 3, order=3) for c in coarse]
            grid = np.meshgrid(*(np.arange(n) for n in patch), indexing="ij")
            coords = [g + f for g, f in zip(grid, field)]
            map_coordinates(x[b, 0].numpy(), coords, order=1, mode="reflect")
            map_coordinates(y[b].numpy(), coords, order=0, mode="reflect")
    t_scipy = (time.perf_counter() - t0) / max(1, n_it // 2)
    rows.append(["3D augmentation s/batch (torch on CPU vs scipy)", f"{t_ours:.3f}",
                 f"{t_scipy:.3f}", f"{t_scipy / t_ours:.1f}x (target >= 10x)"])

    return rows


def mean_sd(values) -> str:
    v = np.array(values, float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[60.0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--kinds", nargs="+", default=["instance", "annotation"],
                        choices=["instance", "annotation"])
    parser.add_argument("--sets", nargs="+", default=["halves", "real", "synthetic"],
                        choices=["halves", "real", "synthetic"],
                        help="halves: one ovule volume, train on each half, score the other; "
                             "real: ovule <-> embryo; synthetic: two synthetic volumes")
    parser.add_argument("--methods", nargs="+", default=list(METHOD_GROUPS),
                        choices=METHOD_GROUPS,
                        help="3d: the 3D model; 2d: the 2D model's rows; plain: the plain "
                             "3D loop (default: all)")
    parser.add_argument("--intensity", type=float, default=None, metavar="S",
                        help="the intensity augmentation of napari-unet's runs (train "
                             "--intensity; default the product's)")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--speed-only", action="store_true",
                        help="the speed rows alone, no quality runs")
    parser.add_argument("--speed-shape", type=int, nargs=3, default=[32, 256, 256],
                        metavar=("Z", "Y", "X"),
                        help="the volume of the tiled vs one-pass rows (one pass must fit)")
    parser.add_argument("--smoke", action="store_true", help="tiny inputs, a few seconds")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    options = {} if args.intensity is None else {"intensity": args.intensity}
    max_it = None
    if args.smoke:
        args.seconds, args.seeds, args.sets, max_it = [2.0], 1, ["synthetic"], 2
        args.kinds = ["annotation"]
    print(f"CPU: {cpu_name()}")
    if not args.no_speed or args.speed_only:  # first: memory rows from a fresh process
        rows = speed_rows(args.smoke, args.speed_shape)
        print(table("\nspeed", ["what", "ours", "reference", "ratio"], rows,
                    [56, 10, 10, 24]), flush=True)
    if args.speed_only:
        return 0
    sets = {}
    pairs = real_pairs()
    shape, count = ((16, 48, 48), 5) if args.smoke else ((40, 160, 160), 60)
    for which in args.sets:  # in the order asked
        if which == "real":
            sets.update({k: v for k, v in pairs.items() if "ovule x" not in k})
        elif which == "halves":
            sets.update({k: v for k, v in pairs.items() if "ovule x" in k})
        else:
            sets["synthetic"] = None
    for seconds in args.seconds:
        for kind in args.kinds:
            labels_name = "dense labels" if kind == "instance" else "strokes on 3 slices"
            results: dict[tuple[str, str], list] = {}
            for name, pair in sets.items():
                for seed in range(args.seeds):
                    if pair is None:
                        train, test = synthetic_pair(seed, shape, count)
                    else:
                        train, test = pair
                    # The two specimens' nuclei are 2.9 and 13 um across but 23 and 16
                    # voxels: zoomed to the other's voxel size they would be 4.5x too
                    # large or small, so each is predicted at its own (--rescale off).
                    rescale = pair is None
                    rows = compare(name, with_targets(train, kind, seed), test, seconds,
                                   seed, kind, rescale, max_it, args.methods, options)
                    for method, iou, f1, ratio, its in rows:
                        results.setdefault((name, method), []).append((iou, f1, ratio, its))
                    print(f"  {name} seed {seed} {labels_name} {seconds:g} s: " + "; ".join(
                        f"{m} IoU {i:.2f} F1 {f:.2f} ({n} it)" for m, i, f, _, n in rows),
                        flush=True)
            table_rows = [[f"{name}: {method}", mean_sd([r[0] for r in v]),
                           mean_sd([r[1] for r in v]), mean_sd([r[2] for r in v]),
                           f"{np.mean([r[3] for r in v]):.0f}"]
                          for (name, method), v in results.items()]
            extra = "".join(f", {k} {v:g}" for k, v in options.items())
            print(table(f"\n{labels_name}, {seconds:g} s of training, {args.seeds} "
                        f"seed(s){extra}",
                        ["set: method", "fg IoU", "F1@0.5 3D", "pred/true fg", "iters"],
                        table_rows, [44, 15, 15, 15, 6]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
