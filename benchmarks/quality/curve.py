"""Quality against seconds of training on real data: the learning curve.

    python benchmarks/quality/curve.py [--seconds 180] [--checkpoints 15 30 60 120 180] [--plot docs/quality.png]

* ISBI 2012 EM membranes: train (``semantic``) on slices 0-19, score slices 20-24:
  pixel error and Rand error (1 - adapted Rand F-score of the cells).
* DSB 2018 fluorescence nuclei: train (``instance``) on images 0-29, score 30-39:
  foreground IoU and instance F1 at IoU 0.5, from random weights and from the shipped
  nuclei model (``--start-model nuclei``); an Otsu threshold is scored in the same run.

Training uses the command line's defaults for this device; the clock counts training time
only (scoring at a checkpoint pauses it). Prints one table per data set, writes the
figures as JSON beside the plot, and draws quality against seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import json

import numpy as np
import tifffile
from _common import DATA, add_smoke, need, table, use_smoke_data

from napari_unet.core.config import TrainOptions
from napari_unet.core.labels import to_annotations
from napari_unet.core.metrics import foreground_iou, instance_scores, pixel_error, rand_error
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.train.plan import plan_training
from napari_unet.core.train.trainer import Trainer


def curve(images, annotations, kind, n_classes, checkpoints, score, device, seed=0,
          start=False):
    # napari-unet train --labels-kind KIND --seconds S [--start-model nuclei]
    options = TrainOptions(labels_kind=kind, seconds=max(checkpoints), device=device,
                           seed=seed, start_model="nuclei" if start else "none")
    plan = plan_training([images], [annotations], options)
    assert plan.bundle.n_classes == n_classes
    trainer = Trainer(plan.bundle, plan.data, plan.config)
    marks = sorted(checkpoints)
    rows = []
    for progress in trainer.fit():
        if marks and progress.elapsed >= marks[0]:
            marks.pop(0)
            rows.append((progress.elapsed, progress.run_iteration,
                         score(Predictor(trainer.bundle(), device=device))))
    if marks:  # the last checkpoint is the end of the budget
        rows.append((trainer.bundle().history[-1]["seconds"], trainer.run_iteration,
                     score(Predictor(trainer.bundle(), device=device))))
    return rows


def _smoke_plot() -> Path | None:
    """Where a smoke run plots: a temporary file when matplotlib is installed (never
    docs/quality.png)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    import tempfile

    return Path(tempfile.mkdtemp(prefix="napari-unet-smoke-")) / "quality.png"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=180)
    ap.add_argument("--checkpoints", type=float, nargs="*", default=[15, 30, 60, 120, 180])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--plot", type=Path, default=Path("docs/quality.png"))
    ap.add_argument("--only", choices=("isbi", "dsb"), default=None)
    ap.add_argument("--dsb-start", choices=("none", "nuclei", "both"), default="both",
                    help="DSB from random weights, from the shipped nuclei model, or both")
    add_smoke(ap)
    args = ap.parse_args(argv)
    if args.smoke:
        use_smoke_data()
        args.seconds, args.checkpoints = 1.0, [0.5]
        args.plot = _smoke_plot()
    checkpoints = sorted({c for c in args.checkpoints if c < args.seconds} | {args.seconds})
    results = {}

    if args.only in (None, "isbi"):
        folder = need(DATA / "isbi2012")
        img = tifffile.imread(folder / "train_image.tif")
        mem = tifffile.imread(folder / "train_membrane.tif")
        mem = (mem > 0).astype(np.uint8)
        test_img, test_mem = img[20:], mem[20:]

        def score_isbi(pred):
            labels = pred.predict(test_img).labels
            return {"pixel_error": pixel_error(labels, test_mem),
                    "rand_error": rand_error(labels, test_mem)}

        rows = curve(img[:20], to_annotations(mem[:20], "semantic"), "semantic", 2,
                     checkpoints, score_isbi, args.device)
        results["isbi"] = [{"seconds": s, "iterations": i, **m} for s, i, m in rows]
        print(table("ISBI 2012 membranes: train slices 0-19, score 20-24",
                    ["seconds", "iterations", "pixel error", "Rand error"],
                    [[f"{s:.0f}", i, m["pixel_error"], m["rand_error"]] for s, i, m in rows],
                    [8, 10, 12, 11]))
        print()

    if args.only in (None, "dsb"):
        from skimage.filters import threshold_otsu
        from skimage.measure import label as connected

        folder = need(DATA / "dsb2018")
        img = tifffile.imread(folder / "fluo_image.tif")
        lab = tifffile.imread(folder / "fluo_labels.tif")
        test_img, test_lab = img[30:], lab[30:]

        def score_dsb(pred):
            out = pred.predict(test_img, instances=True)
            return {"foreground_iou": foreground_iou(out.labels, test_lab),
                    "f1_50": instance_scores(out.instances, test_lab)["f1"]}

        otsu = np.stack([connected(im > threshold_otsu(im)) for im in test_img])
        results["dsb_otsu"] = {"foreground_iou": foreground_iou(otsu, test_lab),
                               "f1_50": instance_scores(otsu, test_lab)["f1"]}
        starts = {"none": [False], "nuclei": [True], "both": [False, True]}[args.dsb_start]
        for start in starts:
            key, how = ("dsb_start", "from the nuclei model") if start else ("dsb", "from scratch")
            rows = curve(img[:30], to_annotations(lab[:30], "instance"), "instance", 3,
                         checkpoints, score_dsb, args.device, start=start)
            results[key] = [{"seconds": s, "iterations": i, **m} for s, i, m in rows]
            table_rows = [[f"{s:.0f}", i, m["foreground_iou"], m["f1_50"]] for s, i, m in rows]
            table_rows.append(["Otsu", "-", results["dsb_otsu"]["foreground_iou"],
                               results["dsb_otsu"]["f1_50"]])
            print(table(f"DSB 2018 nuclei: train images 0-29 ({how}), score 30-39",
                        ["seconds", "iterations", "fg IoU", "F1@0.5"], table_rows,
                        [8, 10, 8, 8]))
            print()

    if args.plot:
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        args.plot.with_suffix(".json").write_text(json.dumps(results, indent=1))
        plot(results, args.plot, args.device)
        print(f"\nwrote {args.plot} and {args.plot.with_suffix('.json')}")
    return 0


def plot(results: dict, path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [k for k in ("isbi", "dsb") if k in results or f"{k}_start" in results]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    for ax, key in zip(axes[0], panels):
        rows = results.get(key, [])
        s = [r["seconds"] for r in rows]
        if key == "isbi":
            ax.plot(s, [r["pixel_error"] for r in rows], "o-", label="pixel error")
            ax.plot(s, [r["rand_error"] for r in rows], "s-", label="Rand error")
            ax.axhline(0.065, ls=":", c="C0", label="pixel error target 0.065")
            ax.set_title("ISBI 2012 EM membranes (lower is better)")
        else:
            for k, how, style in (("dsb", "", "-"), ("dsb_start", ", nuclei start", "--")):
                if k not in results:
                    continue
                r_ = results[k]
                t = [r["seconds"] for r in r_]
                ax.plot(t, [r["foreground_iou"] for r in r_], "o" + style, c="C0",
                        label=f"foreground IoU{how}")
                ax.plot(t, [r["f1_50"] for r in r_], "s" + style, c="C1",
                        label=f"instance F1 @ 0.5{how}")
            ax.axhline(results["dsb_otsu"]["foreground_iou"], ls=":", c="grey",
                       label="Otsu threshold IoU")
            ax.axhline(0.90, ls=":", c="C0", label="IoU target 0.90")
            ax.set_title("DSB 2018 nuclei (higher is better)")
        ax.set_xlabel(f"seconds of training ({device})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
