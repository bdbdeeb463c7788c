"""Review, split and merge objects through the workflow's own buttons, on DSB 2018 nuclei.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/session_review.py [--out DIR]

In a 1280x800 window: open the stack, *Create annotations layer*, paint strokes on four
slices, *Train* for ``--seconds``, *Predict* the whole stack with *Split into objects*,
look at the list of objects to review (click its first rows), split one object that
holds two true nuclei with a line drawn across it, merge two objects that cut one true
nucleus with two clicks on the canvas, *Accept corrections* and train ``--seconds`` more.
Prints what the annotations hold afterwards and saves a screenshot after each step
(``viewer.screenshot(canvas_only=False)``). Needs ``../shared/data/dsb2018`` (or
NAPARI_UNET_DATA).
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


def merged_object(instances: np.ndarray, truth: np.ndarray):
    """(slice, id, the two true nuclei) of a predicted object holding most of two."""
    for z in range(len(instances)):
        for i in np.unique(instances[z][instances[z] > 0]):
            obj = instances[z] == i
            ids, inter = np.unique(truth[z][obj], return_counts=True)
            whole = [(t, n) for t, n in zip(ids, inter) if t and n > 0.6 * (truth[z] == t).sum()]
            if len(whole) >= 2 and obj.sum() > 150:
                return z, int(i), [t for t, _ in whole[:2]]
    return None


def cut_nucleus(instances: np.ndarray, truth: np.ndarray, skip: int | None):
    """(slice, a, b) of two predicted objects that share one true nucleus."""
    for z in range(len(instances)):
        if z == skip:
            continue
        for t in np.unique(truth[z][truth[z] > 0]):
            nucleus = truth[z] == t
            ids, inter = np.unique(instances[z][nucleus], return_counts=True)
            parts = [int(i) for i, n in zip(ids, inter) if i and n > 0.2 * nucleus.sum()]
            if len(parts) == 2:
                return z, parts[0], parts[1]
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/session_review"))
    parser.add_argument("--seconds", type=float, default=20.0, help="each training run")
    args = parser.parse_args()
    folder = DATA / "dsb2018"
    if not folder.exists():
        sys.exit(f"DSB 2018 data not found at {folder} (set NAPARI_UNET_DATA)")
    import tifffile
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from strokes import strokes

    from napari_unet._napari.workflow import WorkflowWidget

    truth = tifffile.imread(folder / "fluo_labels.tif")
    args.out.mkdir(parents=True, exist_ok=True)
    # Autosaves go with the screenshots, never beside the data (nor restore an earlier run).
    os.environ["NAPARI_UNET_AUTOSAVE_DIR"] = str(args.out / "autosave")
    for old in (args.out / "autosave").glob("*.tif"):
        old.unlink()
    import napari

    viewer = napari.Viewer(title="napari-unet review session")
    viewer.window._qt_window.resize(1280, 800)
    widget = WorkflowWidget(viewer)
    viewer.window.add_dock_widget(widget, name="napari-unet", area="right")
    review = widget.correct.review
    shots: list[Path] = []

    def shot(name: str) -> None:
        pump(0.5)
        path = args.out / f"{name}.png"
        viewer.screenshot(path=str(path), canvas_only=False)
        shots.append(path)

    def training_done() -> bool:
        return not widget.session.training.running

    def click_canvas_at(layer, z: int, yx) -> None:
        viewer.dims.set_current_step(0, z)
        viewer.camera.center = tuple(layer.data_to_world((z, *yx))[-2:])
        pump(0.3)
        canvas = viewer.window._qt_viewer.canvas.native
        QTest.mouseClick(canvas, Qt.MouseButton.LeftButton,
                         pos=QPoint(canvas.width() // 2, canvas.height() // 2))
        pump(0.3)

    # Data, strokes, a first training.
    image = widget.data.open_path(folder / "fluo_image.tif")
    widget.annotate.create.native.click()
    annotations = widget.session.annotations
    rng = np.random.default_rng(0)
    for k in (0, 10, 20, 30):
        ann = strokes(truth[k], rng)
        yx = np.nonzero(ann)
        annotations.data_setitem((np.full_like(yx[0], k), *yx), ann[yx])
    form = widget.train.form
    form.budget.value, form.seconds.value = "seconds", args.seconds
    widget.train.start.native.click()
    pump(args.seconds + 300, until=training_done)
    # Predict the whole stack with objects; the list of objects to review fills.
    widget.predict.scope.value = "stack"
    widget.predict.instances.value = True
    widget.predict.run.native.click()
    pump(600, until=lambda: widget.predict.worker is None)
    pump(600, until=lambda: review.worker is None and bool(review.items))
    for title in ("1. Data", "2. Annotate", "3. Train"):  # fold the steps done
        widget.sections[title].header.click()
    widget.scroll.ensureWidgetVisible(review.native)
    shot("1_objects_to_review")
    listed = [f"{review.objects.item(k).text()}" for k in range(review.objects.count())]
    # Click the first row: the view goes to the least certain object.
    rect = review.objects.visualItemRect(review.objects.item(0))
    QTest.mouseClick(review.objects.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    shot("2_least_certain_object")
    first = review.items[0]
    instances = viewer.layers[f"{image.name} instances"]
    centred = (viewer.dims.current_step[0] == first.z
               and instances.selected_label == first.id)

    # Split an object that holds two true nuclei: a line between them, across it. The
    # strokes and class outlines are hidden for the pictures: the objects show alone.
    widget.annotate.layer.value.visible = False
    viewer.layers[f"{image.name} predictions"].visible = False
    objects = np.asarray(instances.data).copy()
    found = merged_object(objects, truth)
    split_ok = None
    if found is not None:
        z, i, (t1, t2) = found
        c1, c2 = (np.argwhere(truth[z] == t).mean(0) for t in (t1, t2))
        mid, normal = (c1 + c2) / 2, np.array([c2[1] - c1[1], c1[0] - c2[0]])
        normal /= np.linalg.norm(normal)
        reach = max(np.ptp(np.argwhere(objects[z] == i), axis=0)) + 4
        viewer.dims.set_current_step(0, z)
        viewer.camera.center = tuple(instances.data_to_world((z, *mid))[-2:])
        viewer.camera.zoom = 5
        widget.correct.review.tools.split.native.click()
        cut = viewer.layers[f"{image.name} cut"]
        line = np.array([[z, *(mid - reach * normal)], [z, *(mid + reach * normal)]])
        cut.add_lines(line)
        after = np.asarray(instances.data[z])
        split_ok = len({int(v) for v in np.unique(after[objects[z] == i]) if v}) >= 2
        shot("3_split")
    # Merge two objects that cut one true nucleus, with two clicks.
    objects_now = np.asarray(instances.data).copy()
    pair = cut_nucleus(objects_now, truth, skip=None if found is None else found[0])
    merge_ok = None
    if pair is not None:
        z, a, b = pair
        widget.correct.review.tools.merge.native.click()
        for k in (a, b):
            pts = np.argwhere(objects_now[z] == k)
            centre = pts[np.argmin(((pts - pts.mean(0)) ** 2).sum(1))]
            viewer.camera.zoom = 5
            click_canvas_at(instances, z, centre)
        merged = np.asarray(instances.data[z])
        merge_ok = not (merged == max(a, b)).any()
        both = np.argwhere(merged == min(a, b)).mean(0)
        viewer.camera.center = tuple(instances.data_to_world((z, *both))[-2:])
        shot("4_merged")
        widget.correct.review.tools.merge.native.click()
    # Accept everything predicted and corrected, then train on.
    widget.correct.scope.value = "all"
    before = np.asarray(annotations.data).copy()
    widget.correct.accept.native.click()
    pump(0.5)
    accepted = np.asarray(annotations.data)
    line_bg = gap_fg = None
    if found is not None and split_ok:
        z, i, _ = found
        cut_px = (objects[z] == i) & (np.asarray(instances.data[z]) == 0)
        line_bg = bool(cut_px.any() and (accepted[z][cut_px] == 1).all())
    if pair is not None and merge_ok:
        z, a, b = pair
        gap = (objects_now[z] == 0) & (np.asarray(instances.data[z]) == min(a, b))
        gap_fg = bool((accepted[z][gap] == 2).all()) if gap.any() else "no gap (touching)"
    status = widget.correct.status.value
    widget.annotate.layer.value.visible = True
    viewer.layers[f"{image.name} predictions"].visible = True
    shot("5_accepted")
    widget.train.start.native.click()
    pump(args.seconds + 300, until=training_done)
    shot("6_trained_again")

    print("objects to review:", *listed, sep="\n  ")  # noqa: T201
    print(f"first row shows its object (slice, selected label): {centred}")  # noqa: T201
    print(f"split of a merged pair {found}: {split_ok}; the line accepted as "  # noqa: T201
          f"background: {line_bg}")
    print(f"merge of a cut nucleus {pair}: {merge_ok}; the gap accepted as foreground: "  # noqa: T201
          f"{gap_fg}")
    print(f"annotated pixels changed by Accept: {int((accepted != before).sum())}")  # noqa: T201
    print(f"Correct status: {status}")  # noqa: T201
    print(f"trained {widget.session.bundle.iterations} iterations in all")  # noqa: T201
    print("screenshots: " + ", ".join(str(p) for p in shots))  # noqa: T201
    viewer.close()
    return 0 if centred and split_ok is not False and merge_ok is not False else 1


if __name__ == "__main__":
    sys.exit(main())
