"""Take ``docs/screenshot.png``: the plugin segmenting the sample stack.

Opens the demo (sample stack, starter annotations, workflow widget) in a 1280x800 window,
trains with the widget's defaults for a short time budget, predicts the whole stack, and
saves a screenshot of the window. Run under a display, e.g.
``xvfb-run -a -s "-screen 0 1280x800x24" python scripts/screenshot.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _events import pump

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="training time budget")
    parser.add_argument("--slice", type=int, default=3, help="slice shown (3 is not annotated)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    args = parser.parse_args()


    from napari_unet._napari.demo import open_demo

    viewer, widget = open_demo()
    viewer.window.resize(1280, 800)

    pump(1.0)
    settings = widget.train.settings
    settings.budget, settings.seconds = "seconds", args.seconds
    widget.train.form.settings = settings
    widget.train.start_training()
    pump(args.seconds + 120, until=lambda: not widget.session.training.running)
    viewer.dims.set_current_step(0, args.slice)
    widget.predict.scope.value = "stack"
    widget.predict.predict()
    pump(60, until=lambda: widget.predict.worker is None)
    viewer.reset_view()
    scroll = widget.scroll.verticalScrollBar()
    scroll.setValue(widget.sections["3. Train"].pos().y())
    pump(1.5)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"saved {args.out}")  # noqa: T201
    viewer.close()


if __name__ == "__main__":
    main()
