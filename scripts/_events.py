"""The Qt event loop run by hand, for the scripts that drive the plugin's buttons."""

from __future__ import annotations

import time


def pump(seconds: float, until=None) -> None:
    """Process Qt events for ``seconds``, or until ``until()`` is true."""
    from qtpy.QtWidgets import QApplication

    app = QApplication.instance()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until and until()):
        app.processEvents()
        time.sleep(0.005)
