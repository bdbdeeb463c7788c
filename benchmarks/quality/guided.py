"""Where should the next strokes go? A scripted annotator, guided three ways.

    python benchmarks/quality/guided.py [--data dsb isbi] [--seeds 2] [--rounds 5]
        [--strokes 12] [--first 60] [--more 30] [--candidates] [--smoke]

The annotator has a stack open: 10 DSB images painted with ``strokes.py``'s biologist-like
strokes (on ISBI, short strokes at random places on 5 slices) and, with ``--pool``,
as many images not painted yet, to which *Where next?* may send it as it sends a user to
any slice of the stack in view. It trains ``--first``
seconds from them (round 0), then for ``--rounds`` rounds adds ``--strokes`` short strokes
of the true class (each at most ``--length`` pixels along the true class, 3 pixels wide)
and trains ``--more`` seconds more from the same weights, choosing where to put them:

* ``where next``: in the regions *Where next?* names (``core.predict.guidance.
  next_regions`` on the uncertainty of the stack's images, the model's patch as the
  window, what the button calls), four strokes per region at its most uncertain
  unannotated pixels;
* ``random``: at random unannotated pixels of the stack;
* ``oracle``: at the largest errors against the ground truth (the deepest pixel of each
  wrong region, largest first): the best any guidance could do.

Every round is scored on images never annotated: foreground IoU and F1@0.5 (DSB), pixel
error (ISBI); mean +- sd over seeds. Also: the ROC AUC of the uncertainty for the
misclassified pixels of the unseen images, Otsu's threshold of the same unseen images
beside round 0, and with ``--candidates`` the uncertainty candidates compared at round 0
(class entropy, disagreement of the four flips, of the last three checkpoints): their
AUC and the time each adds to a preview of one slice.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import DATA, need, table  # noqa: E402

STRATEGIES = ("where next", "random", "oracle")
PER_REGION = 4  # strokes the annotator puts in each region of Where next?


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


# ------------------------------------------------------------------ data
def dsb_set(smoke: bool):
    import tifffile
    folder = need(DATA / "dsb2018")
    images = tifffile.imread(folder / "fluo_image.tif")
    labels = tifffile.imread(folder / "fluo_labels.tif")
    train = np.arange(0, 40, 4)
    test = np.setdiff1d(np.arange(40), train)
    if smoke:  # one quarter of two images
        train, test = train[:1], test[:1]
        images, labels = images[:, :128, :128], labels[:, :128, :128]
    return images, labels, train, test


def isbi_set(smoke: bool):
    import tifffile
    folder = need(DATA / "isbi2012")
    images = tifffile.imread(folder / "train_image.tif")
    labels = tifffile.imread(folder / "train_membrane.tif").astype(np.int32)
    train, test = np.arange(0, 25, 5), np.setdiff1d(np.arange(25), np.arange(0, 25, 5))
    if smoke:
        train, test = train[:1], test[:1]
        images, labels = images[:, :128, :128], labels[:, :128, :128]
    return images, labels, train, test


# ------------------------------------------------------------------ strokes
DIRECTIONS = [(0, 1), (1, 0), (1, 1), (1, -1), (1, 2), (2, 1), (1, -2), (2, -1)]


def stroke_at(truth: np.ndarray, ann: np.ndarray, y: int, x: int, length: int) -> int:
    """Paint one short stroke of the true class through (y, x) into ``ann`` (unannotated
    pixels only): along the direction that stays longest in that class, at most
    ``length`` pixels, 3 wide, never leaving the class. Returns the pixels painted."""
    from scipy import ndimage as ndi

    cls = truth[y, x]
    h, w = truth.shape
    best: list[tuple[int, int]] = []
    for dy, dx in DIRECTIONS:
        norm = float(np.hypot(dy, dx))
        pts = [(y, x)]
        for sign in (1, -1):
            for t in range(1, length):
                yy, xx = int(round(y + sign * t * dy / norm)), int(round(x + sign * t * dx / norm))
                if not (0 <= yy < h and 0 <= xx < w) or truth[yy, xx] != cls or len(pts) >= length:
                    break
                pts.append((yy, xx))
        if len(pts) > len(best):
            best = pts
    line = np.zeros(truth.shape, bool)
    line[tuple(np.array(best).T)] = True
    ys, xs = np.nonzero(line)
    box = (slice(max(0, ys.min() - 2), ys.max() + 3), slice(max(0, xs.min() - 2), xs.max() + 3))
    local = ndi.binary_dilation(line[box]) & (truth[box] == cls) & (ann[box] == 0)
    ann[box][local] = cls + 1
    return int(local.sum())


def spread_points(score: np.ndarray, allowed: np.ndarray, k: int, radius: int,
                  rng: np.random.Generator | None = None) -> list[tuple[int, ...]]:
    """``k`` points of highest ``score`` among ``allowed`` (random ones when ``rng``), at
    least ``radius`` apart (in y or x) on the same slice."""
    s = np.where(allowed, score, -np.inf).astype(np.float64)
    if rng is not None:
        s = np.where(allowed, rng.random(s.shape), -np.inf)
    out = []
    while len(out) < k:
        i = int(np.argmax(s))
        if not np.isfinite(s.flat[i]):
            break
        p = np.unravel_index(i, s.shape)
        out.append(tuple(int(v) for v in p))
        near = (*p[:-2], slice(max(0, p[-2] - radius), p[-2] + radius + 1),
                slice(max(0, p[-1] - radius), p[-1] + radius + 1))
        s[near] = -np.inf
    return out


def first_strokes(kind: str, labels: np.ndarray, rng: np.random.Generator, length: int):
    if kind == "dsb":
        from strokes import strokes
        return np.stack([strokes(lab, rng) for lab in labels])
    ann = np.zeros(labels.shape, np.uint8)
    truth = labels.astype(np.int32)
    for z in range(len(ann)):  # 40 short strokes per slice at random places
        for _, y, x in spread_points(np.zeros(ann[z:z + 1].shape), np.ones(ann[z:z + 1].shape,
                                     bool), 40, length, rng):
            stroke_at(truth[z], ann[z], y, x, length)
    return ann


def choose(strategy: str, k: int, ann: np.ndarray, truth: np.ndarray, probs: np.ndarray,
           window: int, length: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Where the annotator puts its ``k`` strokes (z, y, x) on the annotated images."""
    from scipy import ndimage as ndi

    from napari_unet.core.decision import decide
    from napari_unet.core.predict.guidance import next_regions
    from napari_unet.core.predict.uncertainty import uncertainty

    free = ann == 0
    if strategy == "random":
        return spread_points(np.zeros(ann.shape), free, k, length, rng)
    if strategy == "where next":
        u = uncertainty(probs, axis=1)
        points = []
        for region in next_regions(u, ann, window, n=-(-k // PER_REGION)):
            inside = np.zeros(ann.shape, bool)
            inside[region.slices] = True
            points += spread_points(u, free & inside, min(PER_REGION, k - len(points)), length)
        return points
    wrong = (np.stack([decide(p) for p in probs]) != truth) & free
    within_slices = np.zeros((3, 3, 3), bool)
    within_slices[1] = ndi.generate_binary_structure(2, 1)
    parts, n = ndi.label(wrong, within_slices)
    if not n:
        return []
    depth = np.stack([ndi.distance_transform_edt(w) for w in wrong])
    sizes = np.bincount(parts.ravel())[1:]
    largest = (np.argsort(sizes)[::-1][:k] + 1).tolist()  # the largest wrong regions first
    return [tuple(int(v) for v in p) for p in ndi.maximum_position(depth, parts, largest)]


# ------------------------------------------------------------------ training and scores
def painted(images, ann):
    """The images that hold strokes, and their strokes (training takes only those)."""
    keep = [i for i in range(len(ann)) if ann[i].any()]
    return images[keep], ann[keep]


def train(images, ann, options, seconds: float, resume=None, marks=()):
    """Train ``seconds`` from ``resume`` (or the options' start); returns the bundle and
    the bundles at the elapsed seconds of ``marks``."""
    from napari_unet.core.train.plan import plan_training
    from napari_unet.core.train.trainer import Trainer

    plan = plan_training(list(images), list(ann), options, resume=resume)
    config = dataclasses.replace(plan.config, seconds=seconds, iterations=None)
    trainer = Trainer(plan.bundle, plan.data, config)
    todo, snaps = sorted(marks), []
    for progress in trainer.fit():
        if todo and progress.elapsed >= todo[0]:
            todo.pop(0)
            snaps.append(trainer.bundle())
    return trainer.bundle(), snaps


def predict(bundle, stack, instances=False, tta=False):
    from napari_unet.core.predict.tiles import Predictor
    return Predictor(bundle, tta=tta).predict(stack, probabilities=True, instances=instances)


def scores(kind: str, pred, truth) -> dict:
    from napari_unet.core.metrics import foreground_iou, instance_scores, pixel_error
    from napari_unet.core.predict.uncertainty import roc_auc, uncertainty

    u = uncertainty(pred.probabilities, axis=1)
    fg_truth = truth > 0
    out = {"IoU": foreground_iou(pred.labels, fg_truth.astype(np.uint8)),
           "AUC": roc_auc(u, (pred.labels > 0) != fg_truth)}
    if kind == "dsb":
        out["F1"] = instance_scores(pred.instances, truth)["f1"]
    else:
        out["error"] = pixel_error(pred.labels, fg_truth.astype(np.uint8))
    return out


def otsu_scores(kind: str, images, truth) -> dict:
    from skimage.filters import threshold_otsu
    from skimage.measure import label as connected

    from napari_unet.core.metrics import foreground_iou, instance_scores, pixel_error

    fg = np.stack([im > threshold_otsu(im) for im in images]).astype(np.uint8)
    if kind == "isbi":  # membranes are dark
        fg = 1 - fg
        return {"IoU": foreground_iou(fg, truth > 0), "error": pixel_error(fg, truth > 0)}
    inst = np.stack([connected(f) for f in fg])
    return {"IoU": foreground_iou(fg, (truth > 0).astype(np.uint8)),
            "F1": instance_scores(inst, truth)["f1"]}


def candidates(bundle, snaps, images, truth) -> list[list]:
    """AUC of each uncertainty candidate on the unseen images, and its preview time."""
    from napari_unet.core.decision import decide
    from napari_unet.core.predict.tiles import Predictor
    from napari_unet.core.predict.uncertainty import disagreement, roc_auc, uncertainty

    base = Predictor(bundle)
    probs = base.predict(images, probabilities=True).probabilities
    wrong = np.stack([decide(p) for p in probs]) != (truth > 0)
    flips = [((), ()), ((1,), (2,)), ((2,), (3,)), ((1, 2), (2, 3))]
    flipped = np.stack([np.flip(base.predict(np.flip(images, a) if a else images,
                                             probabilities=True).probabilities, b) if a else probs
                        for a, b in flips])
    ckpts = np.stack([Predictor(b).predict(images, probabilities=True).probabilities
                      for b in [*snaps[-2:], bundle]])
    per = {"class entropy": uncertainty(probs, axis=1),
           "flip disagreement": np.stack([disagreement(flipped[:, z]) for z in range(len(images))]),
           "checkpoint disagreement": np.stack([disagreement(ckpts[:, z])
                                                for z in range(len(images))])}
    one = images[0]
    predictors = [Predictor(b) for b in [*snaps[-2:], bundle]]

    def preview_plain():
        base.predict(one)

    def preview_entropy():
        uncertainty(base.predict(one, probabilities=True).probabilities)

    def preview_flips():
        disagreement(np.stack([np.flip(base.predict(np.flip(one, a) if a else one,
                                                    probabilities=True).probabilities, b)
                               for a, b in [((), ()), ((0,), (1,)), ((1,), (2,)),
                                            ((0, 1), (1, 2))]]))

    def preview_ckpts():
        p = [q.predict(one, probabilities=True).probabilities for q in predictors]
        disagreement(np.stack(p))

    def seconds(fn, calls=7):
        fn()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    plain = seconds(preview_plain)
    timing = {"class entropy": seconds(preview_entropy), "flip disagreement": seconds(preview_flips),
              "checkpoint disagreement": seconds(preview_ckpts)}
    rows = [["labels only (no uncertainty)", "-", plain * 1000, 1.0]]
    for name, u in per.items():
        rows.append([name, roc_auc(u, wrong), timing[name] * 1000, timing[name] / plain])
    return rows


def mean_sd(values) -> str:
    v = np.asarray([x for x in values if x == x], float)
    if not len(v):
        return "-"
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v[0]:.3f}"


# ------------------------------------------------------------------ the run
def run(kind: str, args, log) -> str:
    from napari_unet.core.config import TrainOptions

    images, labels, train_idx, test_idx = (dsb_set if kind == "dsb" else isbi_set)(args.smoke)
    first_idx = train_idx  # the images painted at first
    if args.pool and len(test_idx) > 1:
        # The stack the annotator has open: the painted images and as many unpainted
        # ones (Where next? goes to any slice of it); the rest is never annotated.
        pool_idx, test_idx = test_idx[0::2], test_idx[1::2]
        train_idx = np.sort(np.concatenate([train_idx, pool_idx]))
    painted_first = np.isin(train_idx, first_idx)
    truth = labels[train_idx].astype(np.int32)
    classes = (truth > 0).astype(np.int32)
    test_truth = labels[test_idx]
    results: dict[tuple[str, int], list[dict]] = {}
    cand_rows = None
    otsu = otsu_scores(kind, images[test_idx], test_truth)
    fractions = []
    for seed in range(args.seeds):
        rng = np.random.default_rng(seed)
        ann0 = np.zeros(truth.shape, np.uint8)
        ann0[painted_first] = first_strokes(
            kind, labels[first_idx] if kind == "dsb" else classes[painted_first], rng,
            args.length)
        fractions.append(float((ann0[painted_first] > 0).mean()))
        options = TrainOptions(seed=seed, start_model="nuclei" if kind == "dsb" else "none",
                               patch_size=args.patch)
        marks = (args.first * 2 / 3, args.first * 5 / 6) if args.candidates and seed == 0 else ()
        t0 = time.perf_counter()
        bundle0, snaps = train(*painted(images[train_idx], ann0), options, args.first,
                               marks=marks)
        window = args.patch
        pred0 = predict(bundle0, images[test_idx], instances=kind == "dsb")
        results[("round 0", 0)] = results.get(("round 0", 0), []) + [scores(kind, pred0,
                                                                            test_truth)]
        log(f"{kind} seed {seed}: round 0 in {time.perf_counter() - t0:.0f} s "
            f"({bundle0.iterations} it): {results[('round 0', 0)][-1]}")
        if cand_rows is None and args.candidates and len(snaps) >= 2:
            cand_rows = candidates(bundle0, snaps, images[test_idx], test_truth)
        for strategy in STRATEGIES:
            ann, bundle = ann0.copy(), bundle0
            srng = np.random.default_rng(1000 + seed)
            for r in range(1, args.rounds + 1):
                probs = predict(bundle, images[train_idx]).probabilities
                points = choose(strategy, args.strokes, ann, classes, probs, window,
                                args.length, srng)
                for z, y, x in points:
                    stroke_at(classes[z], ann[z], y, x, args.length)
                bundle, _ = train(*painted(images[train_idx], ann), options, args.more,
                                  resume=bundle)
                pred = predict(bundle, images[test_idx], instances=kind == "dsb")
                results.setdefault((strategy, r), []).append(scores(kind, pred, test_truth))
                log(f"{kind} seed {seed} {strategy} round {r} ({len(points)} strokes, "
                    f"{(ann > 0).mean():.2%} annotated, {bundle.iterations} it in all): "
                    f"{results[(strategy, r)][-1]}")
    metrics = ["IoU", "F1", "AUC"] if kind == "dsb" else ["IoU", "error", "AUC"]
    rows = [["Otsu's threshold", "-", *[mean_sd([otsu[m]]) if m in otsu else "-"
                                        for m in metrics]]]
    rows.append(["strokes alone (round 0)", 0, *[mean_sd([s[m] for s in results[("round 0", 0)]])
                                                 for m in metrics]])
    for strategy in STRATEGIES:
        for r in range(1, args.rounds + 1):
            rows.append([strategy, r, *[mean_sd([s[m] for s in results[(strategy, r)]])
                                        for m in metrics]])
    name = {"dsb": "DSB 2018 nuclei", "isbi": "ISBI 2012 membranes"}[kind]
    out = table(
        f"{name}: {len(first_idx)} of a stack of {len(train_idx)} images painted at first "
        f"({np.mean(fractions):.1%} of their pixels), scored on {len(test_idx)} never "
        f"annotated; {args.first:g} s, then "
        f"{args.strokes} strokes of <= {args.length} px and {args.more:g} s per round; "
        f"{args.seeds} seed(s), mean ± sd; {cpu_name()}",
        ["strategy", "round", *[m if m != "AUC" else "unc. AUC" for m in metrics]], rows,
        [24, 6, 16, 16, 16])
    if cand_rows:
        out += "\n\n" + table(
            f"{name}, round 0 (seed 0): the uncertainty candidates, ROC AUC for the "
            "misclassified pixels of the unseen images, and a preview of one slice "
            f"({images.shape[-2]} x {images.shape[-1]}), median of 7; {cpu_name()} (shared)",
            ["uncertainty", "AUC", "preview ms", "x labels"], cand_rows, [30, 8, 11, 9])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", choices=("dsb", "isbi"), default=["dsb"])
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--strokes", type=int, default=12, help="strokes added per round (K)")
    ap.add_argument("--length", type=int, default=15, help="pixels along one stroke, at most")
    ap.add_argument("--first", type=float, default=60, help="seconds of round 0")
    ap.add_argument("--more", type=float, default=30, help="seconds of each later round")
    ap.add_argument("--patch", type=int, default=None,
                    help="training patch (and Where next? window); default: the CPU's")
    ap.add_argument("--pool", action="store_true",
                    help="the annotator's stack also holds as many images not painted at "
                         "first, which Where next? may send it to (half of the unseen "
                         "images; the other half is scored); by default strokes go only "
                         "to the images painted at first")
    ap.add_argument("--candidates", action="store_true",
                    help="also compare the uncertainty candidates at round 0")
    ap.add_argument("--smoke", action="store_true", help="tiny and quick (< 30 s)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.seeds, args.rounds, args.strokes, args.first, args.more = 1, 1, 4, 2, 1
        args.patch, args.candidates = 64, True
        # No measuring of this CPU's fastest settings (a minute on a busy machine).
        os.environ.setdefault("NAPARI_UNET_PRECISION", "fp32")
        os.environ.setdefault("NAPARI_UNET_THREADS", "2")
    if args.patch is None:
        from napari_unet.core.config import TrainOptions
        args.patch = TrainOptions().train_config("cpu").patch_size
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f} s] {msg}", file=sys.stderr, flush=True)

    for kind in args.data:
        print(run(kind, args, log), flush=True)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
