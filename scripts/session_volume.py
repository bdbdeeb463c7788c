"""A session on a real z-stack through the workflow's own buttons, with screenshots.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/session_volume.py [--out DIR]
        [--iterations 30 --more 20]

What a biologist does with the confocal ovule nuclei of ``../shared/data/3d`` in a
1280x800 window: open the stack through the plugin's reader (*Open TIFF stack…* path)
and read its voxel size in the Data panel, *Create annotations layer*, paint strokes on
three slices, *Train* (``--iterations``, an iteration budget: the same on a busy machine)
while the live preview follows the slice in view, *Predict* the whole volume with *Split
into objects*, delete one wrong 3D object with a click on another slice (*Delete:
click*, through all its slices), *Accept corrections*, train ``--more`` iterations again, *Save
labels…* and open them again. A screenshot after each step, in the slice view and in
the 3D view. Prints what each step did and exits 1 when one did not do what it should.
Needs ``../shared/data/3d`` (or NAPARI_UNET_DATA).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
from _drive import DATA, Drive, benchmark_helpers, paint
from _events import pump


def shot_3d(drive: Drive, name: str, image, shown: list, focus=None) -> Path:
    """A screenshot of the 3D view of ``image`` and the layers ``shown``; the slice view
    (and which layers are visible) comes back after it."""
    viewer = drive.viewer
    visible = {layer.name: layer.visible for layer in viewer.layers}
    step = viewer.dims.current_step  # napari recentres the slider out of the 3D view
    for layer in viewer.layers:
        layer.visible = layer == image or layer in shown
    viewer.dims.ndisplay = 3
    viewer.reset_view()
    viewer.camera.angles = (0.0, 30.0, 55.0)
    path = drive.shot(f"{name}_3d", focus=focus)
    viewer.dims.ndisplay = 2
    viewer.dims.current_step = step
    for layer in viewer.layers:
        layer.visible = visible.get(layer.name, True)
    viewer.reset_view()
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/session_volume"))
    parser.add_argument("--iterations", type=int, default=30, help="the first training")
    parser.add_argument("--more", type=int, default=20, help="training after Accept")
    parser.add_argument("--slices", type=int, nargs=3, default=[25, 50, 75],
                        help="the slices painted")
    parser.add_argument("--correct", type=int, default=40, help="the slice corrected")
    args = parser.parse_args()
    folder = DATA / "3d"
    if not folder.exists():
        sys.exit(f"z-stacks not found at {folder} (set NAPARI_UNET_DATA)")
    import tifffile
    from scipy import ndimage as ndi

    benchmark_helpers()
    from strokes import strokes

    from napari_unet import PLUGIN_NAME

    truth = tifffile.imread(folder / "ovule_nuclei_a_labels.tif")
    drive = Drive("napari-unet volume session", args.out)
    widget, viewer = drive.widget, drive.viewer
    session = widget.session

    # 1. Data: open the stack as a biologist would, and read its voxel size.
    image = widget.data.open_path(folder / "ovule_nuclei_a_image.tif")
    if image is None:
        drive.check("open", False, "the stack did not open")
        return drive.finish()
    voxel = tuple(float(s) for s in image.scale)
    field = widget.data.volume.voxel.value
    typed = tuple(float(v) for v in re.findall(r"[\d.]+(?:e-?\d+)?", field))
    drive.check("voxel size", len(typed) == 3 and np.allclose(typed, voxel, rtol=1e-3)
                and voxel != (1.0, 1.0, 1.0) and voxel[0] > voxel[1],
                f"{widget.data.info.value.splitlines()[0]}; field '{field}' µm (layer scale "
                f"{tuple(round(v, 4) for v in voxel)}); {widget.data.volume.runs.value}")
    viewer.dims.set_current_step(0, args.slices[1])
    drive.shot("voxel_size", focus=widget.data.volume)

    # 2. Annotate: create the layer, strokes on three slices.
    widget.annotate.create.native.click()
    annotations = session.annotations
    rng = np.random.default_rng(0)
    painted = sum(paint(annotations, z, strokes(truth[z], rng)) for z in args.slices)
    widget.annotate.paint_class(2)
    pump(1.0)
    widget.annotate.update_counts()
    counts = widget.annotate.counts.value
    held = sorted(int(z) for z in np.nonzero(np.asarray(annotations.data).any(axis=(1, 2)))[0])
    drive.check("strokes", held == sorted(args.slices) and "3 of 100" in counts,
                f"{painted} voxels on slices {held}; counts: {counts.replace(chr(10), ' | ')}")
    drive.shot("strokes", focus=widget.annotate.counts)
    shot_3d(drive, "strokes", image, [annotations], focus=widget.annotate.counts)

    # 3. Train, and look at the live preview as it comes.
    controller = session.training
    previews: list[int] = []
    controller.preview_updated.connect(previews.append)
    form = widget.train.form
    form.budget.value, form.iterations.value = "iterations", args.iterations
    widget.train.start.native.click()
    # The preview half way through (the first ones come before the model learnt much).
    bar = widget.train.progress
    pump(3600, until=lambda: (bool(previews) and bar.value >= bar.max / 2)
         or not controller.running)
    if previews:
        drive.shot("training_preview", focus=widget.train.form)
        name = f"{image.name} predictions"
        shown = np.asarray(viewer.layers[name].data[previews[-1]])
        first = (f"slice {previews[0]}; at {bar.value / bar.max:.0%} of the budget "
                 f"{int(np.count_nonzero(shown))} px of foreground on slice {previews[-1]}")
    pump(3600, until=lambda: not controller.running)
    total = int(session.bundle.iterations) if session.bundle is not None else 0
    drive.check("train", total >= args.iterations and session.bundle.dims == 3,
                f"{widget.train.status.value.splitlines()[0]}; a {session.bundle.dims}D model")
    drive.check("live preview", bool(previews) and previews[0] == args.slices[1],
                f"{len(previews)} preview(s) of the slice in view during training; the first "
                + (first if previews else "never came"))
    drive.shot("trained", focus=widget.train.form)

    # 4. Predict the whole volume, split into objects.
    drive.predict("stack", instances=True)
    predictions = viewer.layers[f"{image.name} predictions"]
    name = f"{image.name} instances"
    objects_layer = next((lay for lay in viewer.layers if lay.name == name), None)
    objs = None if objects_layer is None else np.asarray(objects_layer.data)
    ids = [] if objs is None else [int(k) for k in np.unique(objs) if k]
    spans = [int(np.ptp(np.nonzero(objs == k)[0])) + 1 for k in ids[:200]]
    drive.check("predict with objects", len(ids) > 0 and np.median(spans) > 1,
                f"{widget.predict.status.value} '{name}': {len(ids)} ids, a median "
                f"{np.median(spans) if spans else 0:.0f} slices per id (true: "
                f"{len(np.unique(truth)) - 1} nuclei)")
    z = args.correct
    viewer.dims.set_current_step(0, z)
    drive.shot("objects", focus=widget.predict.status)
    if objects_layer is not None:
        shot_3d(drive, "objects", image, [objects_layer], focus=widget.predict.status)

    # 5. Correct one object on another slice: delete a false 3D object (or the smallest
    # one there) with a click of Delete, through all its slices.
    objs = np.asarray(objects_layer.data) if objects_layer is not None else None
    on_z = [] if objs is None else [int(k) for k in np.unique(objs[z]) if k]
    if not on_z:
        drive.check("correct", False, f"no object on slice {z} to correct")
        return drive.finish()
    sizes = {k: int(np.count_nonzero(objs == k)) for k in on_z}
    false = sorted((k for k in on_z if sizes[k] > 50
                    and np.mean(truth[objs == k] > 0) < 0.2), key=lambda k: -sizes[k])
    k = false[0] if false else min(on_z, key=lambda i: sizes[i])
    mask = objs == k
    slices = [int(i) for i in np.nonzero(mask.any(axis=(1, 2)))[0]]
    tools = widget.correct.review.tools
    tools.delete.native.click()

    depth = ndi.distance_transform_edt(mask[z])
    drive.click_canvas_at(objects_layer, z, np.unravel_index(int(np.argmax(depth)),
                                                             depth.shape))
    deleted = not (np.asarray(objects_layer.data) == k).any()
    tools.delete.native.click()  # leave delete mode
    drive.shot("corrected", focus=widget.correct.accept)
    before = np.asarray(annotations.data).copy()
    widget.correct.scope.value = "slice"
    widget.correct.accept.native.click()
    pump(0.5)
    accepted = np.asarray(annotations.data)
    changed = accepted != before
    erased_ok = bool((accepted[mask] == 1).all())
    only_edit = not changed[~mask].any()
    status = widget.correct.status.value
    drive.check("correct", deleted and erased_ok and only_edit
                and f"in {len(slices)} slice(s)" in status,
                f"slice {z}: deleted {'a false' if false else 'the smallest'} 3D object of "
                f"{int(mask.sum())} voxels on slices {slices[0]}-{slices[-1]} with one click; "
                f"annotated as background on all {len(slices)}: {erased_ok}; nothing else "
                f"changed: {only_edit}; status '{status}'")

    # 6. Train again from the current weights, predict again.
    again = drive.train(args.more)
    drive.check("train again", again >= total + args.more, f"{total} -> {again} iterations")
    drive.predict("stack", instances=True)
    back = float(np.mean(np.asarray(predictions.data)[mask] > 0))
    drive.check("predict again", widget.predict.status.value.startswith("Predicted"),
                f"{widget.predict.status.value} The deleted object is {back:.0%} "
                "foreground again" + ("" if false else " (it was a true nucleus)"))
    drive.shot("retrained", focus=widget.correct.status)

    # 7. Save the labels, open them again, compare the voxel size.
    out = args.out / "ovule_nuclei_a_labels_predicted.tif"
    out.unlink(missing_ok=True)
    saved = widget.predict.save_labels(out)
    written = np.asarray(viewer.layers[name].data)
    reopened = viewer.open(str(out), plugin=PLUGIN_NAME)[0]
    same = np.allclose(tuple(float(s) for s in reopened.scale), voxel, rtol=1e-6)
    drive.check("save and reopen", saved and same and reopened._type_string == "labels"
                and np.array_equal(np.asarray(reopened.data), written),
                f"saved {out.name}; reopened as {reopened._type_string} '{reopened.name}' "
                f"with voxel size {tuple(round(float(s), 4) for s in reopened.scale)}, the "
                f"objects as saved")
    widget.data.image.value = image
    drive.shot("reopened", focus=widget.data.volume)
    shot_3d(drive, "reopened", image, [reopened], focus=widget.data.volume)
    return drive.finish()


if __name__ == "__main__":
    sys.exit(main())
