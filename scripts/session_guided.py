"""The guided loop through the workflow's own buttons, on DSB 2018 nuclei, with screenshots.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/session_guided.py [--out DIR]
        [--iterations 40 --again 30 --more 20 --presses 3]

In a 1280x800 window: open the stack, *Create annotations layer*, paint strokes on four
slices, *Train* ``--iterations``, *Predict* the whole stack, tick *Show uncertainty*,
press *Where next?* ``--presses`` times and paint, at each marked region, short strokes
of the true class (from the ground truth, as the annotator of
``benchmarks/quality/guided.py`` does: at the region's most uncertain unannotated
pixels), *Train* ``--again`` more, *Predict* the stack with *Split into objects*, click
the first rows of the objects to review, split one merged pair with a line, merge one
split nucleus with two clicks, *Accept and train* ``--more``. The training runs have
iteration budgets, so the session does the same on a busy machine. Prints what each
step did and exits 1 when one did not do what it should (the view did not move, the
annotations did not grow, the status disagrees with what was accepted, ...). Needs
``../shared/data/dsb2018`` (or NAPARI_UNET_DATA).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from _drive import DATA, Drive, benchmark_helpers, paint
from session_review import accept, merge_one, open_and_stroke, review_rows, split_one

#: The annotator's strokes: at most this many pixels along the true class, 3 wide.
STROKE_LENGTH = 15


def region_marked(viewer) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(start, stop) of the rectangle in the *Where next?* layer (None without one)."""
    from napari_unet._napari.guidance_panel import MARK_LAYER

    if MARK_LAYER not in viewer.layers or not viewer.layers[MARK_LAYER].nshapes:
        return None
    corners = np.asarray(viewer.layers[MARK_LAYER].data[0])  # (z, y - 0.5, x - 0.5)
    z = int(round(corners[0, 0]))
    (y0, x0), (y1, x1) = np.round(corners[:, 1:].min(0) + 0.5), np.round(
        corners[:, 1:].max(0) + 0.5)
    return (z, int(y0), int(x0)), (z + 1, int(y1), int(x1))


def where_next(drive: Drive, image, truth_class: np.ndarray, press: int,
               regions: list) -> None:
    """Press *Where next?*; check the view moved to a new marked region; paint the
    annotator's strokes there and check the annotations grew."""
    benchmark_helpers()
    from guided import PER_REGION, spread_points, stroke_at

    from napari_unet._napari.guidance_panel import guidance_for

    widget, viewer = drive.widget, drive.viewer
    session = widget.session
    annotations = session.annotations
    before = (tuple(viewer.dims.current_step), tuple(viewer.camera.center), viewer.camera.zoom)
    widget.annotate.where_next.button.native.click()
    drive.viewer.window._qt_window.repaint()
    marked = region_marked(viewer)
    status = widget.annotate.where_next.status.value
    if marked is None:
        drive.check(f"where next {press}", False, f"no region marked ({status})")
        return
    (z, y0, x0), (_, y1, x1) = marked
    after = (tuple(viewer.dims.current_step), tuple(viewer.camera.center), viewer.camera.zoom)
    centre = np.asarray(image.data_to_world((z, (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2)))[-2:]
    on_it = (viewer.dims.current_step[0] == z
             and np.allclose(viewer.camera.center[-2:], centre, atol=1.0))
    apart = all(y1 <= a[1] or b[1] <= y0 or x1 <= a[2] or b[2] <= x0 or z != a[0]
                for a, b in regions)
    drive.check(f"where next {press}", after != before and on_it and apart
                and viewer.layers.selection.active == annotations,
                f"{status} The view moved to it (slice {viewer.dims.current_step[0]}, centre "
                f"{tuple(round(float(c)) for c in viewer.camera.center[-2:])}); apart from "
                f"the regions before: {apart}; annotations still selected: "
                f"{viewer.layers.selection.active == annotations}")
    regions.append(((z, y0, x0), (z, y1, x1)))
    # The annotator: short strokes of the true class at the most uncertain unannotated
    # pixels of the region.
    u = guidance_for(session).uncertainty(image)[z, y0:y1, x0:x1]
    ann = np.asarray(annotations.data[z]).copy()
    local = ann[y0:y1, x0:x1]
    points = spread_points(u, local == 0, PER_REGION, STROKE_LENGTH)
    for y, x in points:
        stroke_at(truth_class[z, y0:y1, x0:x1], local, y, x, STROKE_LENGTH)
    new = np.where(ann != np.asarray(annotations.data[z]), ann, 0)
    had = int(np.count_nonzero(annotations.data))
    painted = paint(annotations, z, new)
    grew = int(np.count_nonzero(annotations.data)) - had
    classes = sorted(int(v) for v in np.unique(new[new > 0]))
    drive.check(f"strokes in region {press}", grew > 0 and grew == painted,
                f"{len(points)} strokes, {painted} px of class(es) {classes} painted inside "
                f"it; the annotations grew by {grew} px")
    if press == 1:
        drive.shot("where_next", focus=widget.annotate.where_next)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/session_guided"))
    parser.add_argument("--iterations", type=int, default=40, help="the first training")
    parser.add_argument("--again", type=int, default=30, help="training after Where next?")
    parser.add_argument("--more", type=int, default=20, help="training after Accept")
    parser.add_argument("--presses", type=int, default=3, help="presses of Where next?")
    args = parser.parse_args()
    if not (DATA / "dsb2018").exists():
        sys.exit(f"DSB 2018 data not found at {DATA / 'dsb2018'} (set NAPARI_UNET_DATA)")
    import tifffile

    truth = tifffile.imread(DATA / "dsb2018" / "fluo_labels.tif")
    drive = Drive("napari-unet guided session", args.out)
    widget, viewer = drive.widget, drive.viewer
    image = open_and_stroke(drive, truth)
    total = drive.train(args.iterations)
    drive.check("train", total >= args.iterations, f"{total} iterations")
    drive.predict("stack")
    drive.check("predict", widget.predict.status.value.startswith("Predicted the whole"),
                widget.predict.status.value)

    # The uncertainty over the image, then Where next? with strokes at each region.
    widget.predict.uncertainty.show.value = True
    name = f"{image.name} uncertainty"
    layer = next((lay for lay in viewer.layers if lay.name == name), None)
    drive.check("show uncertainty", layer is not None and layer.visible
                and str(layer.blending) == "additive" and layer.opacity < 1,
                f"layer '{name}': " + ("missing" if layer is None else
                                       f"visible {layer.visible}, {layer.blending} blending, "
                                       f"opacity {layer.opacity}, max "
                                       f"{float(np.max(layer.data)):.2f}"))
    regions: list = []
    for press in range(1, args.presses + 1):
        where_next(drive, image, (truth > 0).astype(np.int32), press, regions)
        if press == 1:  # the whole slice: the uncertainty over the image, the region on it
            viewer.reset_view()
            drive.shot("uncertainty", focus=widget.predict.uncertainty)
    total_before = total
    total = drive.train(args.again)
    drive.check("train again", total >= total_before + args.again,
                f"{total_before} -> {total} iterations")
    widget.predict.uncertainty.show.value = False

    # Objects: the least certain first, split one, merge one, Accept and train.
    drive.predict("stack", instances=True)
    review_rows(drive, image)
    widget.session.annotations.visible = False
    viewer.layers[f"{image.name} predictions"].visible = False
    split = split_one(drive, image, truth)
    merge = merge_one(drive, image, truth, skip=None if split[0] is None else split[0][0])
    widget.session.annotations.visible = True
    viewer.layers[f"{image.name} predictions"].visible = True
    accept(drive, image, split, merge, args.more)
    drive.shot("accepted_and_trained", focus=widget.correct.status)
    return drive.finish()


if __name__ == "__main__":
    sys.exit(main())
