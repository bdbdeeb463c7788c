"""How fluid napari stays while the plugin trains, and how fast Stop is honoured.

Opens the demo (sample stack, starter annotations, workflow widget) in a real viewer,
then measures the Qt event loop's delay with a 10 ms QTimer probe: at rest, while
training starts (data and model are built in the worker), and while training runs
with the live preview on, as the user scrolls slices and pans. Stop is pressed several
times; its latency is the time from the click to the worker's ``finished`` signal.

Run under a display, e.g. ``xvfb-run -a python benchmarks/gui/responsiveness.py``.
Targets: p95 delay at most 50 ms while training, Stop within 0.5 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]  # benchmarks/: _common, plain_unet

import argparse
import os
import statistics
import time

import numpy as np
from _common import add_smoke


class Probe:
    """A 10 ms QTimer; each tick records how late it fired."""

    def __init__(self, interval_ms: int = 10):
        from qtpy.QtCore import QTimer

        self.interval = interval_ms / 1000
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.delays: list[float] = []
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.delays.append(max(0.0, now - self._last - self.interval))
        self._last = now

    def start(self) -> None:
        self.delays, self._last = [], None
        self.timer.start()

    def stop(self) -> list[float]:
        self.timer.stop()
        return list(self.delays)


def pump(app, seconds: float, until=None) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.001)


def row(name: str, delays: list[float]) -> str:
    if not delays:
        return f"{name:<34} {'-':>8} {'-':>8} {'-':>8} {0:>7}"
    ms = np.asarray(delays) * 1000
    return (f"{name:<34} {np.median(ms):8.1f} {np.percentile(ms, 95):8.1f} {ms.max():8.1f} "
            f"{len(ms):7d}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of each phase")
    parser.add_argument("--stops", type=int, default=3, help="how many times to time Stop")
    parser.add_argument("--no-scroll", action="store_true", help="skip the scrolling phase")
    parser.add_argument("--no-preview", action="store_true", help="turn the live preview off")
    add_smoke(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.stops = 1.0, 1

    from qtpy.QtWidgets import QApplication

    from napari_unet._napari.demo import open_demo

    viewer, widget = open_demo()
    viewer.window.resize(1400, 900)
    app = QApplication.instance()
    controller = widget.session.training
    pump(app, 1.0)

    scroll = {"step": 0}
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera

    def interact() -> None:  # scroll slices and pan, as a user would
        scroll["step"] += 1
        viewer.dims.set_current_step(0, scroll["step"] % 5)
        camera.center = (128 + 20 * np.sin(scroll["step"] / 5), 128)

    from qtpy.QtCore import QTimer

    user = QTimer()
    user.setInterval(100)
    user.timeout.connect(interact)

    probe = Probe()
    results: list[tuple[str, list[float]]] = []

    def measure(name: str, seconds: float, scrolling: bool, until=None) -> None:
        if scrolling:
            user.start()
        probe.start()
        pump(app, seconds, until)
        results.append((name, probe.stop()))
        user.stop()

    measure("at rest", 3.0, False)
    measure("at rest, scrolling and panning", 3.0, True)

    settings = widget.train.settings
    settings.budget, settings.seconds = "seconds", 2 * args.seconds + 60
    settings.live_preview = not args.no_preview
    widget.train.form.settings = settings
    first = {"t": None}
    controller.progressed.connect(
        lambda p: first.__setitem__("t", first["t"] or time.perf_counter()))
    t0 = time.perf_counter()
    worker = widget.train.start_training()
    measure("training starts (first run)", 120, False, until=lambda: first["t"] is not None)
    startup = first["t"] - t0
    measure("training", args.seconds, False)
    if not args.no_scroll:
        measure("training, scrolling and panning", args.seconds, True)
    iterations = widget.train.plot.iterations[-1] if widget.train.plot.iterations else 0

    stops: list[float] = []

    def timed_stop(worker) -> None:
        done = {"t": None}
        worker.finished.connect(lambda: done.__setitem__("t", time.perf_counter()))
        t = time.perf_counter()
        controller.stop()
        pump(app, 30, until=lambda: done["t"] is not None)
        stops.append(done["t"] - t)

    timed_stop(worker)
    for _ in range(args.stops - 1):
        first["t"] = None
        worker = widget.train.start_training()
        pump(app, 60, until=lambda: first["t"] is not None)
        pump(app, 2.0)
        timed_stop(worker)

    print(f"napari-unet responsiveness: 10 ms QTimer probe, {os.cpu_count()} CPU cores")
    print(f"model: depth {widget.train.model.depth.value}, "
          f"{widget.train.model.base_channels.value} base channels; batch {settings.batch_size}, "
          f"patch {settings.patch_size}; live preview {'off' if args.no_preview else 'on'}; "
          f"{iterations} iterations in the probed run")
    print()
    print(f"{'event loop delay (ms)':<34} {'median':>8} {'p95':>8} {'max':>8} {'ticks':>7}")
    for name, delays in results:
        print(row(name, delays))
    print()
    print(f"first progress after Start: {startup:.2f} s (imports torch, builds data and model)")
    print("Stop honoured after (s):   " + ", ".join(f"{s:.3f}" for s in stops)
          + f"   (max {max(stops):.3f}, median {statistics.median(stops):.3f})")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
