"""Review, split and merge objects through the workflow's own buttons, on DSB 2018 nuclei.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/session_review.py [--out DIR]
        [--iterations 40 --more 20]

In a 1280x800 window: open the stack, *Create annotations layer*, paint strokes on four
slices, *Train* for ``--iterations``, *Predict* the whole stack with *Split into objects*,
look at the list of objects to review (click its first rows), split one object that
holds two true nuclei with a line drawn across it, merge two objects that cut one true
nucleus with two clicks on the canvas, *Accept and train* ``--more`` iterations. Prints
what each step did, saves a screenshot after each, and exits 1 when a step did not do
what it should. The steps are functions, also run by ``session_guided.py``. Needs
``../shared/data/dsb2018`` (or NAPARI_UNET_DATA).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from _drive import DATA, Drive, benchmark_helpers, paint
from _events import pump

STROKE_SLICES = (0, 10, 20, 30)


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


def open_and_stroke(drive: Drive, truth: np.ndarray, slices=STROKE_SLICES):
    """Open the DSB stack, create the annotations layer, paint the scripted biologist's
    strokes (``strokes.py``) on ``slices``; return the image layer."""
    benchmark_helpers()
    from strokes import strokes

    widget = drive.widget
    image = widget.data.open_path(DATA / "dsb2018" / "fluo_image.tif")
    drive.check("open", image is not None and image.name == "fluo_image",
                f"opened {None if image is None else image.name}: "
                f"{widget.data.info.value.splitlines()[0]}")
    widget.annotate.create.native.click()
    annotations = widget.session.annotations
    rng = np.random.default_rng(0)
    painted = sum(paint(annotations, z, strokes(truth[z], rng)) for z in slices)
    widget.annotate.paint_class(2)
    pump(1.0)
    widget.annotate.update_counts()
    counts = widget.annotate.counts.value.replace("\n", " | ")
    drive.check("strokes", painted > 0 and int(np.count_nonzero(annotations.data)) == painted,
                f"{painted} px painted on slices {list(slices)}; counts: {counts}")
    return image


def review_rows(drive: Drive, image, rows: int = 3) -> None:
    """Wait for the list of objects to review, screenshot it, click its first ``rows``:
    each click must show that object's slice and select its id."""
    widget, viewer = drive.widget, drive.viewer
    review = widget.correct.review
    pump(600, until=lambda: review.worker is None and bool(review.items))
    listed = [review.objects.item(k).text() for k in range(review.objects.count())]
    drive.check("objects to review", bool(listed),
                f"{len(listed)} listed, least certain first: " + "; ".join(listed[:rows]))
    for title in ("1. Data", "2. Annotate", "3. Train", "4. Predict"):  # fold the steps done
        section = widget.sections[title]
        if section.header.isChecked():
            section.header.click()
    widget.scroll.ensureWidgetVisible(review.native)
    instances = viewer.layers[f"{image.name} instances"]
    for row in range(min(rows, len(listed))):
        before = tuple(viewer.camera.center)
        drive.click_row(review.objects, row)
        item = review.items[row]
        shown = (viewer.dims.current_step[0] == item.z and instances.selected_label == item.id
                 and (row == 0 or tuple(viewer.camera.center) != before))
        drive.check(f"review row {row + 1}", shown,
                    f"the view is on slice {viewer.dims.current_step[0]} (object's {item.z}), "
                    f"selected label {instances.selected_label} (object {item.id})")
        if row == 0:
            drive.shot("objects_to_review", focus=review)


def split_one(drive: Drive, image, truth: np.ndarray):
    """Split a predicted object that holds two true nuclei with a line drawn across it
    (*Split: draw a line*); return ``(found, objects before)`` for the checks of Accept."""
    widget, viewer = drive.widget, drive.viewer
    instances = viewer.layers[f"{image.name} instances"]
    objects = np.asarray(instances.data).copy()
    found = merged_object(objects, truth)
    if found is None:
        drive.check("split", False, "no predicted object holds two true nuclei")
        return None, objects
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
    cut.add_lines(np.array([[z, *(mid - reach * normal)], [z, *(mid + reach * normal)]]))
    pump(0.3)
    after = np.asarray(instances.data[z])
    parts = {int(v) for v in np.unique(after[objects[z] == i]) if v}
    drive.check("split", len(parts) >= 2,
                f"object {i} of slice {z} (true nuclei {t1}, {t2}) cut by a line into "
                f"{len(parts)} objects {sorted(parts)}")
    drive.shot("split", focus=widget.correct.review.tools)
    return found, objects


def merge_one(drive: Drive, image, truth: np.ndarray, skip: int | None):
    """Merge two predicted objects that cut one true nucleus with two clicks (*Merge:
    click two*); return ``(pair, objects before)``."""
    widget, viewer = drive.widget, drive.viewer
    instances = viewer.layers[f"{image.name} instances"]
    objects = np.asarray(instances.data).copy()
    pair = cut_nucleus(objects, truth, skip=skip)
    if pair is None:
        drive.check("merge", False, "no true nucleus is cut into two predicted objects")
        return None, objects
    z, a, b = pair
    tools = widget.correct.review.tools
    tools.merge.native.click()
    for k in (a, b):
        pts = np.argwhere(objects[z] == k)
        centre = pts[np.argmin(((pts - pts.mean(0)) ** 2).sum(1))]
        viewer.camera.zoom = 5
        drive.click_canvas_at(instances, z, centre)
    merged = np.asarray(instances.data[z])
    ok = not (merged == max(a, b)).any() and (merged == min(a, b)).any()
    drive.check("merge", ok, f"objects {a} and {b} of slice {z} clicked: one object "
                f"{min(a, b)} of {int((merged == min(a, b)).sum())} px")
    both = np.argwhere(merged == min(a, b)).mean(0)
    viewer.camera.center = tuple(instances.data_to_world((z, *both))[-2:])
    drive.shot("merged", focus=tools)
    tools.merge.native.click()  # leave merge mode
    return pair, objects


def accept(drive: Drive, image, split, merge, iterations: int) -> None:
    """*Accept and train* every predicted slice; check that the split line and the merge
    gap became annotations, that nothing else did, and that the status line says what
    the notification of Accept said."""
    from napari.utils.notifications import notification_manager

    widget, viewer = drive.widget, drive.viewer
    annotations = widget.session.annotations
    instances = np.asarray(viewer.layers[f"{image.name} instances"].data)
    widget.correct.scope.value = "all"
    before = np.asarray(annotations.data).copy()
    said: list[str] = []
    notification_manager.notification_ready.connect(lambda n: said.append(str(n.message)))
    trained_before = widget.session.bundle.iterations
    total = drive.train(iterations, button=widget.correct.accept_train)
    accepted = np.asarray(annotations.data)
    (found, split_before), (pair, merge_before) = split, merge
    if found is not None:
        z, i, _ = found
        line = (split_before[z] == i) & (instances[z] == 0)
        drive.check("split accepted", line.any() and (accepted[z][line] == 1).all(),
                    f"the {int(line.sum())} px of the cut line annotated as background")
    if pair is not None:
        z, a, b = pair
        gap = (merge_before[z] == 0) & (instances[z] == min(a, b))
        drive.check("merge accepted", (accepted[z][gap] >= 2).all(),
                    f"the gap between the two ({int(gap.sum())} px) annotated as foreground"
                    if gap.any() else "the two touched: no gap to fill")
    changed = sorted({int(z) for z in np.nonzero((accepted != before).any(axis=(1, 2)))[0]})
    status = widget.correct.status.value
    note = next((m for m in said if m.startswith("Accepted")), "")
    told = re.search(r"Accepted ([\d,]+) corrected pixel\(s\) in (\d+) slice", note)
    shown = re.search(r"([\d,]+) pixel\(s\) in (\d+) slice\(s\) \(slice ([\d, …]+)\)", status)
    agree = bool(told and shown and told.group(1) == shown.group(1)
                 and told.group(2) == shown.group(2)
                 and [int(s) for s in re.findall(r"\d+", shown.group(3))] == changed)
    drive.check("status after Accept", agree,
                f"notification '{note}'; status '{status}'; slices whose annotations "
                f"changed {changed}")
    drive.check("train after Accept", total > trained_before,
                f"Accept and train: {trained_before} -> {total} iterations")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/session_review"))
    parser.add_argument("--iterations", type=int, default=40, help="the first training")
    parser.add_argument("--more", type=int, default=20, help="training after Accept")
    args = parser.parse_args()
    if not (DATA / "dsb2018").exists():
        sys.exit(f"DSB 2018 data not found at {DATA / 'dsb2018'} (set NAPARI_UNET_DATA)")
    import tifffile

    truth = tifffile.imread(DATA / "dsb2018" / "fluo_labels.tif")
    drive = Drive("napari-unet review session", args.out)
    image = open_and_stroke(drive, truth)
    total = drive.train(args.iterations)
    drive.check("train", total >= args.iterations, f"{total} iterations")
    drive.predict("stack", instances=True)
    review_rows(drive, image)
    # The strokes and class outlines are hidden for the pictures: the objects show alone.
    drive.widget.session.annotations.visible = False
    drive.viewer.layers[f"{image.name} predictions"].visible = False
    split = split_one(drive, image, truth)
    merge = merge_one(drive, image, truth, skip=None if split[0] is None else split[0][0])
    drive.widget.session.annotations.visible = True
    drive.viewer.layers[f"{image.name} predictions"].visible = True
    accept(drive, image, split, merge, args.more)
    drive.shot("accepted_and_trained", focus=drive.widget.correct.status)
    return drive.finish()


if __name__ == "__main__":
    sys.exit(main())
