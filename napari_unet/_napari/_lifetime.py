"""Call back once when a dock widget leaves its window, or its window closes."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from contextlib import suppress

from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QMainWindow, QWidget

log = logging.getLogger(__name__)


class CloseWatcher(QObject):
    """Runs ``callback`` once when ``widget`` (or a container of it) is taken out of its
    main window, e.g. when its dock is closed, or when that window closes.

    Only weak references to the ancestors are kept, so the watcher never keeps a closed
    viewer alive.
    """

    def __init__(self, widget: QWidget, callback: Callable[[], None]):
        super().__init__(widget)
        self._widget = weakref.ref(widget)
        self._callback: Callable[[], None] | None = callback
        self._window: weakref.ref | None = None
        self._watched: list[weakref.ref] = []
        widget.installEventFilter(self)

    def fire(self) -> None:
        callback, self._callback = self._callback, None
        self._unwatch()
        if callback is not None:
            callback()

    def _unwatch(self) -> None:
        for ref in self._watched:
            obj = ref()
            if obj is not None:
                obj.removeEventFilter(self)
        self._watched = []

    def _watch_ancestors(self, widget: QWidget) -> None:
        """Follow the chain of parents up to the window the widget now lives in."""
        self._unwatch()
        window = widget.window()
        self._window = weakref.ref(window) if isinstance(window, QMainWindow) else None
        parent = widget.parentWidget()
        while parent is not None:
            parent.installEventFilter(self)
            self._watched.append(weakref.ref(parent))
            parent = parent.parentWidget()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        # An exception here would abort the application (PyQt6), and Qt may still call
        # this while Python tears the watcher down: be defensive.
        try:
            self._filter(obj, event)
        except Exception:
            log.exception("closing a napari-unet panel failed")
        return False

    def _filter(self, obj: QObject, event: QEvent) -> None:
        ref = getattr(self, "_widget", None)
        widget = ref() if ref is not None else None
        if widget is None or getattr(self, "_callback", None) is None:
            return
        kind = event.type()
        window = self._window() if self._window is not None else None
        if kind == QEvent.Type.Close and window is not None and obj is window:
            self.fire()
        elif kind == QEvent.Type.ParentChange:
            if window is not None and widget.window() is not window:
                self.fire()
            else:
                self._watch_ancestors(widget)


class Subscriptions:
    """Signal connections of a panel to shared objects, undone when the panel closes."""

    def __init__(self) -> None:
        self._pairs: list[tuple[object, Callable]] = []

    def connect(self, signal, callback: Callable) -> None:
        signal.connect(callback)
        self._pairs.append((signal, callback))

    def release(self) -> None:
        for signal, callback in self._pairs:
            with suppress(Exception):  # already gone with its owner
                signal.disconnect(callback)
        self._pairs.clear()
