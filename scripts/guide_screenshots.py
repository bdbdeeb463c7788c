"""Take the screenshots of docs/user-guide.md: one per step, the dock scrolled to it.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/guide_screenshots.py [--out docs/images]

Opens the demo (sample stack, starter annotations, workflow widget) in a 1280x800 window
and saves, through the workflow's own buttons: the Data and Annotate steps
(``guide-1-annotate.png``), Train after a short run (``guide-2-train.png``), Predict after
predicting the stack (``guide-3-predict.png``) and Correct (``guide-4-correct.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _events import pump

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=40, help="training budget")
    parser.add_argument("--slice", type=int, default=3, help="slice shown (3 is not annotated)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    from napari_unet._napari.demo import open_demo

    viewer, widget = open_demo()
    viewer.window.resize(1280, 800)
    scroll = widget.scroll.verticalScrollBar()

    def shot(name: str, section: str) -> None:
        scroll.setValue(widget.sections[section].pos().y())
        pump(1.5)
        path = args.out / name
        viewer.screenshot(str(path), canvas_only=False)
        print(f"saved {path}")  # noqa: T201

    pump(1.0)
    shot("guide-1-annotate.png", "1. Data")
    settings = widget.train.settings
    settings.budget, settings.iterations = "iterations", args.iterations
    widget.train.form.settings = settings
    widget.train.start_training()
    pump(1800, until=lambda: not widget.session.training.running)
    shot("guide-2-train.png", "3. Train")
    viewer.dims.set_current_step(0, args.slice)
    widget.predict.scope.value = "stack"
    widget.predict.predict()
    pump(600, until=lambda: widget.predict.worker is None)
    viewer.reset_view()
    shot("guide-3-predict.png", "4. Predict")
    shot("guide-4-correct.png", "5. Correct")
    viewer.close()


if __name__ == "__main__":
    main()
