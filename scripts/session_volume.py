"""A session on a real z-stack through the workflow's own buttons, with screenshots.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/session_volume.py [--out DIR]

What a biologist does with the confocal ovule nuclei of ``../shared/data/3d`` in a
1280x800 window: open the stack through the plugin's reader (*Open TIFF stack…* path)
and read its voxel size in the Data panel, *Create annotations layer*, paint strokes on
three slices, *Train* (``--seconds``) while the live preview follows the slice in view,
*Predict* the whole volume with *Split into objects*, erase one wrong object on another
slice (the fill bucket with label 0 on the predictions layer), *Accept corrections*,
train again, *Save labels…* and open them again. A screenshot after each step, in the
slice view and in the 3D view. It prints what each step showed and exits 1 when the
voxel size, the strokes or the corrections were not kept.
Needs ``../shared/data/3d`` (or NAPARI_UNET_DATA).
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
    parser.add_argument("--out", type=Path, default=Path("/tmp/session_volume"))
    parser.add_argument("--seconds", type=float, default=40.0, help="each training run")
    parser.add_argument("--slices", type=int, nargs=3, default=[25, 50, 75],
                        help="the slices painted")
    parser.add_argument("--correct", type=int, default=40, help="the slice corrected")
    args = parser.parse_args()
    folder = DATA / "3d"
    if not folder.exists():
        sys.exit(f"z-stacks not found at {folder} (set NAPARI_UNET_DATA)")
    import tifffile
    from scipy import ndimage as ndi

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from strokes import strokes

    from napari_unet import PLUGIN_NAME
    from napari_unet._napari.workflow import WorkflowWidget

    truth = tifffile.imread(folder / "ovule_nuclei_a_labels.tif")
    args.out.mkdir(parents=True, exist_ok=True)
    # Autosaves go with the screenshots, never beside the data (nor restore an earlier run).
    os.environ["NAPARI_UNET_AUTOSAVE_DIR"] = str(args.out / "autosave")
    for old in (args.out / "autosave").glob("*.tif"):
        old.unlink()
    import napari

    viewer = napari.Viewer(title="napari-unet volume session")
    viewer.window._qt_window.resize(1280, 800)
    widget = WorkflowWidget(viewer)
    viewer.window.add_dock_widget(widget, name="napari-unet", area="right")
    shots: list[Path] = []

    def shot(name: str, focus=None, three_d: list | None = None) -> Path:
        """A 1280x800 screenshot of the window, the panel scrolled to ``focus``; with
        ``three_d`` the 3D view of the image and those labels layers."""
        if focus is not None:
            widget.scroll.ensureWidgetVisible(focus.native, 0, 40)
        visible = {layer.name: layer.visible for layer in viewer.layers}
        step = viewer.dims.current_step  # napari recentres the slider out of the 3D view
        if three_d is not None:
            for layer in viewer.layers:
                layer.visible = layer == image or layer in three_d
            viewer.dims.ndisplay = 3
            viewer.reset_view()
            viewer.camera.angles = (0.0, 30.0, 55.0)
        pump(0.8)
        path = args.out / f"{len(shots) + 1:02d}_{name}{'_3d' if three_d else ''}.png"
        viewer.screenshot(path=str(path), canvas_only=False)
        if three_d is not None:
            viewer.dims.ndisplay = 2
            viewer.dims.current_step = step
            for layer in viewer.layers:
                layer.visible = visible.get(layer.name, True)
            viewer.reset_view()
        shots.append(path)
        return path

    def training_done() -> bool:
        return not widget.session.training.running

    report: list[str] = []
    # 1. Data: open the stack as a biologist would, and read its voxel size.
    image = widget.data.open_path(folder / "ovule_nuclei_a_image.tif")
    assert image is not None, "the stack did not open"
    voxel = tuple(float(s) for s in image.scale)
    report.append(f"opened {image.name}: {widget.data.info.value.splitlines()[0]}; voxel "
                  f"size field '{widget.data.volume.voxel.value}' µm; "
                  f"{widget.data.volume.runs.value}")
    viewer.dims.set_current_step(0, args.slices[1])
    shot("opened", focus=widget.data.volume)

    # 2. Annotate: create the layer, strokes on three slices.
    widget.annotate.create.native.click()
    annotations = widget.session.annotations
    rng = np.random.default_rng(0)
    for z in args.slices:
        ann = strokes(truth[z], rng)
        yx = np.nonzero(ann)
        annotations.data_setitem((np.full_like(yx[0], z), *yx), ann[yx])
    widget.annotate.paint_class(2)
    pump(1.0)
    widget.annotate.update_counts()
    report.append("counts: " + widget.annotate.counts.value.replace("\n", " | "))
    shot("annotated", focus=widget.annotate.counts)
    shot("annotated", focus=widget.annotate.counts, three_d=[annotations])

    # 3. Train, and look at the live preview half way.
    form = widget.train.form
    form.budget.value, form.seconds.value = "seconds", args.seconds
    widget.train.start.native.click()
    pump(args.seconds / 2 + 5)
    shot("training_preview", focus=widget.train.form)
    pump(args.seconds + 300, until=training_done)
    report.append(f"trained: {widget.train.status.value}")
    shot("trained", focus=widget.train.form)

    # 4. Predict the whole volume, split into objects.
    widget.predict.scope.value = "stack"
    widget.predict.instances.value = True
    widget.predict.run.native.click()
    pump(600, until=lambda: widget.predict.worker is None)
    predictions = viewer.layers[f"{image.name} predictions"]
    objects_layer = next((layer for layer in viewer.layers
                          if layer.name.startswith(image.name) and layer.name.endswith(" instances")),
                         None)
    report.append(f"predicted: {widget.predict.status.value}")
    if objects_layer is not None:
        objs = np.asarray(objects_layer.data)
        spans = [np.ptp(np.nonzero(objs == k)[0]) + 1 for k in np.unique(objs) if k][:200]
        report.append(f"objects layer '{objects_layer.name}': {len(np.unique(objs)) - 1} ids, "
                      f"median {np.median(spans) if spans else 0:.0f} slices per id")
    z = args.correct
    viewer.dims.set_current_step(0, z)
    shot("predicted", focus=widget.predict.status)
    shot("predicted", focus=widget.predict.status, three_d=[objects_layer])

    # 5. Correct one object on another slice: erase a false one (or the smallest).
    made = np.asarray(predictions.data[z]).copy()
    regions, n = ndi.label(made > 0)
    sizes = np.bincount(regions.ravel())
    false = sorted((k for k in range(1, n + 1) if sizes[k] > 20
                    and np.mean(truth[z][regions == k] > 0) < 0.2), key=lambda k: -sizes[k])
    k = false[0] if false else 1 + int(np.argmin(np.where(sizes[1:] > 20, sizes[1:],
                                                          sizes.max() + 1)))
    mask = regions == k
    ys, xs = np.nonzero(mask)
    predictions.fill((z, int(ys[0]), int(xs[0])), 0)
    viewer.layers.selection.active = predictions
    shot("corrected", focus=widget.correct.accept)
    before = np.asarray(annotations.data).copy()
    widget.correct.accept.native.click()
    pump(0.5)
    accepted = np.asarray(annotations.data)
    changed = accepted != before
    erased_ok = bool((accepted[z][mask] == 1).all())
    only_edit = not changed[z][~mask].any() and not np.delete(changed, z, 0).any()
    report.append(f"corrected slice {z}: erased a {'false' if false else 'true (smallest)'} "
                  f"object of {int(mask.sum())} px; annotated as background: {erased_ok}; "
                  f"nothing else changed: {only_edit}; {widget.correct.status.value}")

    # 6. Train again from the current weights, predict again.
    widget.train.start.native.click()
    pump(args.seconds + 300, until=training_done)
    widget.predict.run.native.click()
    pump(600, until=lambda: widget.predict.worker is None)
    back = float(np.mean(np.asarray(predictions.data[z])[mask] > 0))
    report.append(f"retrained: {widget.train.status.value}; the erased object is "
                  f"{back:.0%} foreground again")
    shot("retrained", focus=widget.correct.status)

    # 7. Save the labels, open them again, compare the voxel size.
    out = args.out / "ovule_nuclei_a_labels_predicted.tif"
    saved = widget.predict.save_labels(out)
    reopened = viewer.open(str(out), plugin=PLUGIN_NAME)[0]
    same = tuple(float(s) for s in reopened.scale) == voxel
    report.append(f"saved {out} ({saved}); reopened as '{reopened.name}' with voxel size "
                  f"{tuple(round(float(s), 4) for s in reopened.scale)}: same as the image: "
                  f"{same}")
    widget.data.image.value = image
    shot("reopened", focus=widget.data.volume)
    shot("reopened", focus=widget.data.volume, three_d=[reopened])

    for line in report:
        print(line)  # noqa: T201
    print("screenshots: " + ", ".join(str(p) for p in shots))  # noqa: T201
    viewer.close()
    return 0 if saved and same and erased_ok and only_edit else 1


if __name__ == "__main__":
    sys.exit(main())
