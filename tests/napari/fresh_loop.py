"""The whole GUI loop as a user runs it, for a fresh interpreter (test_fresh_process.py).

Opens what ``napari-unet demo`` opens, presses Train and Predict through the widgets' own
buttons, and prints one JSON line. Nothing is imported before the viewer exists, so the
import order is the user's: torch, and triton where the installed torch brings it, are
first imported after napari's OpenGL canvas.
"""

from __future__ import annotations

import faulthandler
import json
import sys
import time

faulthandler.enable()


def wait(app, done, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError("the widget did not finish in time")
        app.processEvents()
        time.sleep(0.01)


def main(iterations: int) -> None:
    from napari_unet._napari.demo import open_demo

    viewer, widget = open_demo()
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    viewer.window._qt_window.resize(1280, 800)
    viewer.window._qt_window.show()
    app.processEvents()
    before = {"torch": "torch" in sys.modules, "triton": "triton" in sys.modules}
    annotations = viewer.layers["nuclei annotations"]
    painted = annotations.data.copy()

    settings = widget.train.settings
    settings.budget, settings.iterations = "iterations", iterations
    widget.train.form.settings = settings
    widget.train.start.native.click()
    wait(app, lambda: widget.train.controller.running, 30)
    wait(app, lambda: not widget.train.controller.running, 600)
    bundle = widget.session.bundle

    widget.predict.scope.value = "stack"
    widget.predict.run.native.click()
    wait(app, lambda: widget.predict.worker is None, 600)
    predictions = viewer.layers["nuclei predictions"].data
    from napari_unet.core.models.speed import cpu_speed

    result = {
        "before": before,
        "speed": cpu_speed().source,
        "iterations": None if bundle is None else bundle.iterations,
        "triton_loaded": "triton" in sys.modules,
        "predictions_shape": list(predictions.shape),
        "foreground": float((predictions > 0).mean()),
        "annotations_unchanged": bool((annotations.data == painted).all()),
        "status": widget.train.status.value,
    }
    viewer.close()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
