"""A whole session through the workflow's own buttons, on DSB 2018 nuclei, with screenshots.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/session.py [--out DIR]

What a user does, in a 1280x800 window: open the stack (*Open TIFF stack…* path), *Create
annotations layer*, paint strokes on a few slices, *Train* for ``--iterations``, *Predict*
the slice in view, erase the false objects on the predictions layer with the fill bucket
(label 0) on the first of ``--slices`` that shows some, *Accept corrections*, train ``--seconds`` more, *Predict* again. It prints
whether the erased objects stayed erased, whether the annotations layer stayed selected,
how much of the image the overlays cover, and saves a screenshot after each step.
Needs ``../shared/data/dsb2018`` (or NAPARI_UNET_DATA).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from _events import pump

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NAPARI_UNET_DATA", ROOT.parent / "shared" / "data"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("session-screenshots"))
    parser.add_argument("--iterations", type=int, default=60, help="first training run")
    parser.add_argument("--seconds", type=float, default=15.0, help="training after Accept")
    parser.add_argument("--slices", type=int, nargs="+", default=[5, 15, 25, 35, 2, 12],
                        help="slices looked at, in turn, for false objects to erase")
    args = parser.parse_args()
    folder = DATA / "dsb2018"
    if not folder.exists():
        sys.exit(f"DSB 2018 data not found at {folder} (set NAPARI_UNET_DATA)")
    import tifffile
    from scipy import ndimage as ndi

    sys.path.insert(0, str(ROOT / "benchmarks" / "quality"))
    from strokes import strokes

    from napari_unet._napari.workflow import WorkflowWidget

    truth = tifffile.imread(folder / "fluo_labels.tif")
    args.out.mkdir(parents=True, exist_ok=True)
    # Autosaves go with the screenshots, never beside the data (nor restore an earlier run).
    os.environ["NAPARI_UNET_AUTOSAVE_DIR"] = str(args.out / "autosave")
    for old in (args.out / "autosave").glob("*.tif"):
        old.unlink()
    import napari

    viewer = napari.Viewer(title="napari-unet session")
    viewer.window.resize(1280, 800)
    widget = WorkflowWidget(viewer)
    viewer.window.add_dock_widget(widget, name="napari-unet", area="right")

    def shot(name: str) -> Path:
        pump(0.5)
        path = args.out / f"{name}.png"
        viewer.window._qt_window.grab().save(str(path))
        return path

    def training_done() -> bool:
        return not widget.session.training.running

    z = args.slices[0]
    # 1. Data: open the stack.
    image = widget.data.open_path(folder / "fluo_image.tif")
    assert image is not None and image.name == "fluo_image", "the stack did not open"
    viewer.dims.set_current_step(0, z)
    info = widget.data.info.value.splitlines()[0]
    # 2. Annotate: create the layer, paint strokes on four slices (not the corrected one).
    widget.annotate.create.native.click()
    annotations = widget.session.annotations
    rng = np.random.default_rng(0)
    painted = [0, 10, 20, 30]
    for k in painted:
        ann = strokes(truth[k], rng)
        yx = np.nonzero(ann)
        annotations.data_setitem((np.full_like(yx[0], k), *yx), ann[yx])
    widget.annotate.paint_class(2)
    shots = [shot("1_annotated")]
    # 3. Train for a number of iterations.
    form = widget.train.form
    form.budget.value, form.iterations.value = "iterations", args.iterations
    widget.train.start.native.click()
    pump(600, until=training_done)
    shots.append(shot("2_trained"))
    selected_after_train = viewer.layers.selection.active == annotations
    # 4. Predict the slice in view, slice after slice until one shows false objects.
    for z in args.slices:
        viewer.dims.set_current_step(0, z)
        widget.predict.run.native.click()
        pump(120, until=lambda: widget.predict.worker is None)
        predictions = viewer.layers[f"{image.name} predictions"]
        made = np.asarray(predictions.data[z]).copy()
        objects, n = ndi.label(made > 0)
        false = [k for k in range(1, n + 1) if np.mean(truth[z][objects == k] > 0) < 0.2]
        if false:
            break
    fallback = not false
    if fallback:  # the model made no false object: the user disagrees with one
        sizes = np.bincount(objects.ravel())[1:]
        false = [1 + int(np.argmin(np.where(sizes > 30, sizes, sizes.max() + 1)))]
    erased = []
    # 5. Correct: the fill bucket with label 0 on each false object, then Accept.
    for k in false:
        mask = objects == k
        ys, xs = np.nonzero(mask)
        predictions.fill((z, int(ys[0]), int(xs[0])), 0)
        erased.append(mask)
    viewer.layers.selection.active = annotations
    shots.append(shot("3_corrected"))
    before = np.asarray(annotations.data).copy()
    widget.correct.accept.native.click()
    pump(0.5)
    accepted = np.asarray(annotations.data)
    erased_are_background = all((accepted[z][m] == 1).all() for m in erased)
    changed = accepted != before
    only_edits = not changed[z][~np.any(erased, axis=0)].any() and not np.delete(
        changed, z, 0).any()
    # 6. Train on, predict again.
    form.budget.value, form.seconds.value = "seconds", args.seconds
    widget.train.start.native.click()
    pump(args.seconds + 300, until=training_done)
    widget.predict.run.native.click()
    pump(120, until=lambda: widget.predict.worker is None)
    after = np.asarray(predictions.data[z])
    back = [float(np.mean(after[m] > 0)) for m in erased]
    shots.append(shot("4_retrained"))

    # How much of the canvas the overlays change: the image must show through.
    canvas = viewer.screenshot(canvas_only=True).astype(np.int16)
    for layer in viewer.layers:
        layer.visible = layer == image
    bare = viewer.screenshot(canvas_only=True).astype(np.int16)
    covered = float(np.mean(np.abs(canvas[..., :3] - bare[..., :3]).max(-1) > 40))
    for layer in viewer.layers:
        layer.visible = True

    print(f"image: {info}; strokes on slices {painted}; slice {z} corrected "  # noqa: T201
          f"({'false objects' if len(erased) and not fallback else 'no false object: a true one'})")
    print(f"trained {widget.session.bundle.iterations} iterations in all "  # noqa: T201
          f"({args.iterations} + {args.seconds:g} s)")
    print(f"erased objects: {len(erased)} ({sum(int(m.sum()) for m in erased)} px); "  # noqa: T201
          f"annotated as background: {erased_are_background}; nothing else annotated by "
          f"Accept: {only_edits}")
    print("predicted foreground in each erased object after retraining: "  # noqa: T201
          + ", ".join(f"{b:.0%}" for b in back))
    stayed = sum(b < 0.5 for b in back)
    print(f"erased objects that stayed erased: {stayed} of {len(back)}")  # noqa: T201
    print(f"annotations layer still selected after Train: {selected_after_train}")  # noqa: T201
    print(f"canvas pixels changed by the overlays: {covered:.1%}")  # noqa: T201
    print("screenshots: " + ", ".join(str(p) for p in shots))  # noqa: T201
    viewer.close()
    ok = stayed == len(back) and erased_are_background and only_edits and selected_after_train
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
