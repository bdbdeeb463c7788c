"""What the session scripts share: a 1280x800 viewer with the workflow docked, screenshots,
training for a number of iterations, real clicks on the canvas, and a record of checks.

Every step of a session says what it did and whether that is what it should have done;
:meth:`Drive.finish` prints the record and gives the exit status (1 when a check failed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
from _events import pump

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NAPARI_UNET_DATA", ROOT.parent / "shared" / "data"))
WIDTH, HEIGHT = 1280, 800


def benchmark_helpers() -> None:
    """Make the scripted annotator of the benchmarks importable (``strokes``,
    ``guided``)."""
    for folder in (ROOT / "benchmarks", ROOT / "benchmarks" / "quality"):
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


class Drive:
    """A viewer of ``WIDTH`` x ``HEIGHT`` with the workflow docked; screenshots go to
    ``out`` (``NN_name.png``), autosaves to ``out/autosave`` (emptied first)."""

    def __init__(self, title: str, out: Path):
        out.mkdir(parents=True, exist_ok=True)
        # Autosaves go with the screenshots, never beside the data (nor restore an earlier
        # run's strokes).
        os.environ["NAPARI_UNET_AUTOSAVE_DIR"] = str(out / "autosave")
        for old in (out / "autosave").glob("*.tif"):
            old.unlink()
        import napari

        from napari_unet._napari.workflow import WorkflowWidget

        self.out = out
        self.viewer = napari.Viewer(title=title)
        self.viewer.window._qt_window.resize(WIDTH, HEIGHT)
        self.widget = WorkflowWidget(self.viewer)
        self.viewer.window.add_dock_widget(self.widget, name="napari-unet", area="right")
        self.shots: list[Path] = []
        self.checks: list[tuple[str, bool, str]] = []
        pump(0.5)

    # Record ------------------------------------------------------------------
    def check(self, step: str, ok: bool, what: str) -> bool:
        """Record (and print at once) what ``step`` did and whether it should have."""
        self.checks.append((step, bool(ok), what))
        print(f"[{'ok' if ok else 'FAILED'}] {step}: {what}", flush=True)  # noqa: T201
        return bool(ok)

    def finish(self) -> int:
        failed = [step for step, ok, _ in self.checks if not ok]
        print("screenshots: " + ", ".join(str(p) for p in self.shots))  # noqa: T201
        print(f"{len(self.checks) - len(failed)} of {len(self.checks)} steps did what "  # noqa: T201
              "they should" + (f"; failed: {', '.join(failed)}" if failed else ""))
        self.viewer.close()
        return 1 if failed else 0

    # Screenshots ---------------------------------------------------------------
    def shot(self, name: str, focus=None) -> Path:
        """A screenshot of the whole window, the dock scrolled to ``focus`` (a widget)."""
        pump(0.3)  # the dock's layout settles (folded steps) before it scrolls
        if focus is not None:
            native = getattr(focus, "native", focus)
            self.widget.scroll.ensureWidgetVisible(native, 0, 40)
        pump(0.8)
        path = self.out / f"{len(self.shots) + 1:02d}_{name}.png"
        self.viewer.screenshot(path=str(path), canvas_only=False)
        self.shots.append(path)
        return path

    # Training -------------------------------------------------------------------
    def train(self, iterations: int, button=None) -> int:
        """Train for ``iterations`` (the Train panel's iteration budget) by pressing
        ``button`` (*Train* by default); wait for the end; return the iterations the
        model has in all afterwards (0 when it has none)."""
        form = self.widget.train.form
        form.budget.value, form.iterations.value = "iterations", int(iterations)
        (button or self.widget.train.start).native.click()
        pump(3600, until=lambda: not self.widget.session.training.running)
        bundle = self.widget.session.bundle
        return 0 if bundle is None else int(bundle.iterations)

    def predict(self, scope: str, instances: bool = False) -> None:
        """*Predict* the slice in view or the whole stack, and wait for it."""
        predict = self.widget.predict
        predict.scope.value = scope
        predict.instances.value = instances
        predict.run.native.click()
        pump(3600, until=lambda: predict.worker is None)

    # Clicks ----------------------------------------------------------------------
    def click_canvas_at(self, layer, z: int, yx) -> None:
        """A real left click on the canvas at pixel ``yx`` of slice ``z`` of ``layer``:
        the view goes there (slice, centre) and the click lands in the canvas' middle."""
        from qtpy.QtCore import QPoint, Qt
        from qtpy.QtTest import QTest

        viewer = self.viewer
        viewer.dims.set_current_step(0, z)
        viewer.camera.center = tuple(layer.data_to_world((z, *yx))[-2:])
        pump(0.3)
        canvas = viewer.window._qt_viewer.canvas.native
        QTest.mouseClick(canvas, Qt.MouseButton.LeftButton,
                         pos=QPoint(canvas.width() // 2, canvas.height() // 2))
        pump(0.3)

    def click_row(self, listing, row: int) -> None:
        """A real click on row ``row`` of a QListWidget."""
        from qtpy.QtCore import Qt
        from qtpy.QtTest import QTest

        rect = listing.visualItemRect(listing.item(row))
        QTest.mouseClick(listing.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
        pump(0.3)


def paint(annotations, z: int, strokes: np.ndarray) -> int:
    """Write the non-zero ``strokes`` (Y, X) into slice ``z`` of ``annotations`` as a paint
    event does (napari's ``data_setitem``: undo, counts and autosave follow)."""
    yx = np.nonzero(strokes)
    annotations.data_setitem((np.full_like(yx[0], z), *yx), strokes[yx])
    return int(len(yx[0]))
