"""Where objects start: connected components and sure interiors against the cores of a
region, scored on the same probabilities.

    python benchmarks/quality/cores.py [--seeds 2] [--first 60]         # 2D, strokes on DSB
    python benchmarks/quality/cores.py --volumes [--seeds 2] [--seconds 150]
        [--sets halves real synthetic] [--kinds instance annotation]
    python benchmarks/quality/cores.py --speed                          # seconds per slice
    python benchmarks/quality/cores.py --smoke

**2D** (models without an interior class): the round-0 models of ``guided.py`` (strokes
like a biologist's on 10 DSB images, ``--first`` seconds from the nuclei model) predict
the 30 unseen DSB images and the dense (360x360) and dim (512x640) fluorescence images
of ``dsb2018/varied/``. Their classes are split into objects by connected components
(the rule before) and by the cores of each class's region
(:func:`napari_unet.core.predict.objects.class_objects`) for every smoothing x height of
the grid; ``FOREGROUND_CORES`` (now) was chosen on the DSB images and checked on the
two other kinds.

**Volumes** (``--volumes``): the 3D models of ``volumes.py`` (dense labels: instance
masks -> background / interior / boundary; strokes on 3 slices), trained ``--seconds``
on each set and seed, predict the other volume of their set once; their probabilities
are split by the rule before (instance models: sure interiors, p(interior) >= 0.8;
strokes: the unsmoothed cores of the foreground two xy voxels high) and by the grid
(instance models: interior threshold x smoothing x height; strokes: smoothing x
height). The rules now (``VOLUME_INTERIOR_PROBABILITY`` with ``INTERIOR_CORES``;
``FOREGROUND_CORES``) were chosen on the ovule halves and checked on ovule -> embryo
and on synthetic volumes.

Prints F1@0.5 (of 3D objects for volumes), mean +- sd over seeds, per set, and the mean
over the sets a rule was chosen on and over those it was checked on.

**Speed** (``--speed``): seconds per slice of the objects of the true foreground of the
``dsb2018/varied`` images (and of a 2x2 tiling of the bright-field ones, 2048 x 2048):
connected components, ``class_objects`` (each part of the region in its own box), and
the same cores searched over the whole slice at once, in the same run.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common

import argparse
import itertools
import time

import numpy as np
from _common import DATA, add_smoke, need, table, use_smoke_data

SMOOTH = (0.0, 0.5, 1.0, 2.0)
HEIGHT = (0.5, 1.0, 2.0)
INTERIOR = (0.5, 0.65, 0.8)


def mean_sd(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if len(v) > 1 else f"{v.mean():.3f}"


def connected_objects(classes: np.ndarray, min_size: int) -> np.ndarray:
    """The rule before, in 2D: each connected region of a class one object."""
    from skimage.measure import label as connected

    from napari_unet.core.predict.objects import drop_small

    out = np.zeros(classes.shape, np.int32)
    for c in np.unique(classes[classes > 0]):
        comp = connected(classes == c)
        out[comp > 0] = comp[comp > 0] + out.max()
    return drop_small(out, min_size)


def rows_2d(args, log) -> tuple[list[list], dict]:
    import tifffile
    from guided import dsb_set, first_strokes, predict, train

    from napari_unet.core.config import MIN_OBJECT_SIZE, TrainOptions
    from napari_unet.core.decision import FOREGROUND_CORES, Cores
    from napari_unet.core.metrics import instance_scores
    from napari_unet.core.predict.objects import class_objects


    images, labels, train_idx, test_idx = dsb_set(args.smoke)
    sets = {"DSB unseen (chosen on)": (images[test_idx], labels[test_idx])}
    folder = need(DATA / "dsb2018" / "varied")
    for name, kind in (("360x360", "dense"), ("512x640", "dim")):
        image = tifffile.imread(folder / f"{name}_image.tif")
        truth = tifffile.imread(folder / f"{name}_labels.tif")
        if args.smoke:
            image, truth = image[:1], truth[:1]
        sets[f"varied {kind} (checked on)"] = (image, truth)
    rules = {"connected components (before)": None}
    rules.update({f"cores, smooth {s:g}, height {h:g}" + (
        " (now)" if Cores(s, h) == FOREGROUND_CORES else ""): Cores(s, h)
        for s, h in itertools.product(SMOOTH, HEIGHT)})
    f1: dict[tuple[str, str], list[float]] = {}
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        strokes = first_strokes("dsb", labels[train_idx], rng, 15)
        patch = 64 if args.smoke else TrainOptions().train_config("cpu").patch_size
        options = TrainOptions(seed=seed, start_model="nuclei", patch_size=patch)
        bundle, _ = train(images[train_idx], strokes, options, args.first)
        log(f"2D seed {seed}: trained {bundle.iterations} steps")
        for set_name, (stack, truth) in sets.items():
            classes = predict(bundle, stack).labels
            for rule, cores in rules.items():
                objects = np.stack([
                    connected_objects(c, MIN_OBJECT_SIZE) if cores is None
                    else class_objects(c, MIN_OBJECT_SIZE, cores=cores) for c in classes])
                f1.setdefault((rule, set_name), []).append(
                    instance_scores(objects, truth)["f1"])
    return summary(rules, list(sets), f1), {"sets": list(sets)}


def volume_rule(probs, labels, voxel, rule):
    """Objects of one rule: ``("sure", p)`` the sure interiors before, ``(p, cores)`` the
    cores of the interior at p(interior) >= p, ``(None, cores)`` of the foreground."""
    from scipy.ndimage import distance_transform_edt
    from skimage.measure import label as connected
    from skimage.segmentation import watershed

    from napari_unet.core.decision import interior_seeds
    from napari_unet.core.predict.objects import drop_small, grow_objects, object_cores

    foreground = labels > 0
    sampling = tuple(float(v) for v in voxel)
    first, cores = rule
    if first == "sure":  # before: the sure interiors, 26-connected, as in 2D
        seeds = drop_small(connected(interior_seeds(probs[-2], labels, cores),
                                     connectivity=3), 5)
        distance = distance_transform_edt(foreground, sampling=sampling)
        out = watershed(-distance, markers=seeds, mask=foreground)
    else:
        region = foreground if first is None else interior_seeds(probs[-2], labels, first)
        seeds = connected(object_cores(region, sampling, cores), connectivity=3)
        out = grow_objects(foreground, seeds, sampling)
    return drop_small(out, 10)


def rows_volumes(args, log) -> list[list]:
    from volumes import real_pairs, run_3d, synthetic_pair, with_targets

    from napari_unet.core.decision import (
        FOREGROUND_CORES,
        INTERIOR_CORES,
        VOLUME_INTERIOR_PROBABILITY,
        Cores,
    )
    from napari_unet.core.metrics import instance_scores

    pairs = real_pairs()
    shape, count = ((16, 48, 48), 5) if args.smoke else ((40, 160, 160), 60)
    sets = {}
    for which in args.sets:
        if which == "halves":
            sets.update({f"{k} (chosen on)": v for k, v in pairs.items() if "ovule x" in k})
        elif which == "real":
            sets.update({f"{k} (checked on)": v for k, v in pairs.items()
                         if "ovule x" not in k})
        else:
            sets["synthetic (checked on)"] = None
    out = []
    for kind in args.kinds:
        grid = itertools.product(SMOOTH, HEIGHT)
        if kind == "instance":
            rules = {"sure interiors, p >= 0.8 (before)": ("sure", 0.8)}
            for p, (s, h) in itertools.product(INTERIOR, list(grid)):
                now = p == VOLUME_INTERIOR_PROBABILITY and Cores(s, h) == INTERIOR_CORES
                rules[f"cores of p >= {p:g}, smooth {s:g}, height {h:g}"
                      + (" (now)" if now else "")] = (p, Cores(s, h))
        else:
            rules = {"foreground cores, smooth 0, height 2 (before)": (None, Cores(0.0, 2.0))}
            rules.update({f"foreground cores, smooth {s:g}, height {h:g}" + (
                " (now)" if Cores(s, h) == FOREGROUND_CORES else ""): (None, Cores(s, h))
                for s, h in grid})
        f1: dict[tuple[str, str], list[float]] = {}
        for set_name, pair in sets.items():
            for seed in range(args.seeds):
                train, test = pair if pair is not None else synthetic_pair(seed, shape, count)
                # as volumes.py: the real stacks at their own voxel size
                labels, _, its, probs = run_3d(with_targets(train, kind, seed), test, kind,
                                               args.seconds, seed, pair is None,
                                               2 if args.smoke else None, probabilities=True)
                for rule, spec in rules.items():
                    objects = volume_rule(probs, labels, test[2], spec)
                    f1.setdefault((rule, set_name), []).append(
                        instance_scores(objects, test[1], volume=True)["f1"])
                marked = {r: f1[(r, set_name)][-1] for r in rules
                          if r.endswith("(before)") or r.endswith("(now)")}
                log(f"volumes {kind} {set_name} seed {seed}: {its} steps; " + "; ".join(
                    f"{r} F1 {v:.3f}" for r, v in marked.items()))
        title = "dense labels" if kind == "instance" else "strokes on 3 slices"
        out.append((title, summary(rules, list(sets), f1), list(sets)))
    return out


def summary(rules, set_names, f1) -> list[list]:
    rows = []
    for rule in rules:
        chosen = [np.mean(f1[(rule, s)]) for s in set_names if "chosen" in s]
        checked = [np.mean(f1[(rule, s)]) for s in set_names if "checked" in s]
        rows.append([rule, *[mean_sd(f1[(rule, s)]) for s in set_names],
                     f"{np.mean(chosen):.3f}" if chosen else "-",
                     f"{np.mean(checked):.3f}" if checked else "-"])
    return rows


def whole_slice_cores(region: np.ndarray, cores) -> np.ndarray:
    """The cores of ``class_objects`` searched over the whole slice at once (the
    baseline of ``--speed``)."""
    from scipy.ndimage import distance_transform_edt, gaussian_filter
    from skimage.morphology import h_maxima

    distance = distance_transform_edt(region).astype(np.float32)
    if cores.smooth > 0:
        distance = gaussian_filter(distance, cores.smooth)
        distance[~region] = 0
    return (h_maxima(distance, cores.height) > 0) & region


def rows_speed(args) -> list[list]:
    import tifffile
    from skimage.measure import label as connected

    from napari_unet.core.config import MIN_OBJECT_SIZE
    from napari_unet.core.decision import FOREGROUND_CORES
    from napari_unet.core.predict.objects import class_objects, grow_objects

    folder = need(DATA / "dsb2018" / "varied")
    cases = []
    for name in ("360x360", "512x640", "1024x1024"):
        truth = tifffile.imread(folder / f"{name}_labels.tif")[: 1 if args.smoke else 4]
        cases.append((name, [(t > 0).astype(np.uint8) for t in truth]))
    cases.append(("2048x2048 (bright-field 2 x 2)", [np.tile(c, (2, 2)) for c in cases[-1][1]]))
    class_objects(cases[0][1][0])  # imports and first calls out of the timings
    rows = []
    for name, planes in cases:
        times = {}
        for what, fn in (
                ("components", lambda c: connected(c > 0)),
                ("class_objects", lambda c: class_objects(c, MIN_OBJECT_SIZE)),
                ("whole slice", lambda c: grow_objects(c > 0, connected(
                    whole_slice_cores(c > 0, FOREGROUND_CORES))))):
            t0 = time.perf_counter()
            for c in planes:
                fn(c)
            times[what] = (time.perf_counter() - t0) / len(planes)
        fg = np.mean([c.mean() for c in planes])
        rows.append([name, f"{fg:.0%}", f"{times['components']:.3f}",
                     f"{times['class_objects']:.3f}", f"{times['whole slice']:.3f}",
                     f"{times['whole slice'] / times['class_objects']:.1f}x"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--first", type=float, default=60, help="2D: seconds of training")
    ap.add_argument("--volumes", action="store_true", help="the 3D models instead")
    ap.add_argument("--speed", action="store_true", help="seconds per slice instead")
    ap.add_argument("--seconds", type=float, default=150, help="volumes: seconds of training")
    ap.add_argument("--sets", nargs="+", default=["halves", "real", "synthetic"],
                    choices=["halves", "real", "synthetic"])
    ap.add_argument("--kinds", nargs="+", default=["instance", "annotation"],
                    choices=["instance", "annotation"])
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seeds, args.first, args.seconds, args.sets = 1, 2.0, 2.0, ["synthetic"]
    from volumes import cpu_name

    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    print(f"CPU: {cpu_name()}")
    if args.speed or args.smoke:
        print(table("\nobjects of the true foreground, seconds per slice (mean of 4)",
                    ["slices", "foreground", "components", "class_objects", "whole slice",
                     "whole / class_objects"], rows_speed(args)))
        if args.speed:
            return 0
    if not args.volumes or args.smoke:
        rows, info = rows_2d(args, log)
        print(table(f"\n2D objects of strokes models, F1@0.5, {args.first:g} s, "
                    f"{args.seeds} seed(s)", ["rule", *info["sets"], "chosen on",
                                               "checked on"], rows))
    if args.volumes or args.smoke:
        for title, rows, sets in rows_volumes(args, log):
            print(table(f"\n3D objects, {title}, F1@0.5 of 3D objects, {args.seconds:g} s, "
                        f"{args.seeds} seed(s)", ["rule", *sets, "chosen on", "checked on"],
                        rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
