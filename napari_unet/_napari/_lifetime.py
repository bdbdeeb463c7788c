"""Call back once when a dock widget is removed from its dock or its window closes."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget


class CloseWatcher(QObject):
    """Runs ``callback`` once when ``widget`` leaves its window or the window closes."""

    def __init__(self, widget: QWidget, callback: Callable[[], None]):
        super().__init__(widget)
        self._callback: Callable[[], None] | None = callback
        self._window: QWidget | None = None
        widget.installEventFilter(self)

    def fire(self, *_args) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        kind = event.type()
        if obj is self._window and kind == QEvent.Type.Close:
            self.fire()
        elif isinstance(obj, QWidget) and obj is self.parent():
            if kind == QEvent.Type.ParentChange and obj.parent() is None and self._window:
                self.fire()
            elif kind in (QEvent.Type.Show, QEvent.Type.ParentChange):
                window = obj.window()
                if window is not obj and window is not self._window:
                    if self._window is not None:
                        self._window.removeEventFilter(self)
                    self._window = window
                    window.installEventFilter(self)
        return False
