"""Layer pickers that follow the viewer's layer list, and small layout helpers."""

from __future__ import annotations

from magicgui.widgets import ComboBox, Container, Label


def layer_combo(viewer, layer_type: type, label: str, *, exclude_rgb: bool = False) -> ComboBox:
    """A combo box of the viewer's layers of ``layer_type``, refreshed as layers come
    and go or are renamed."""

    def choices(_widget) -> list[tuple[str, object]]:
        return [
            (layer.name, layer) for layer in viewer.layers
            if isinstance(layer, layer_type) and not (exclude_rgb and getattr(layer, "rgb", False))
        ]

    combo = ComboBox(choices=choices, label=label, nullable=True, value=None)

    def refresh(event=None) -> None:
        try:
            combo.reset_choices()
        except RuntimeError:  # the widget was deleted with its window
            disconnect()

    def on_inserted(event) -> None:
        event.value.events.name.connect(refresh)
        refresh()

    events = viewer.layers.events

    def disconnect() -> None:
        for emitter, callback in ((events.inserted, on_inserted), (events.removed, refresh),
                                  (events.moved, refresh)):
            emitter.disconnect(callback)

    events.inserted.connect(on_inserted)
    events.removed.connect(refresh)
    events.moved.connect(refresh)
    for layer in viewer.layers:
        layer.events.name.connect(refresh)
    return combo


def form(*widgets) -> Container:
    """Widgets with their labels in one aligned column, without outer margins."""
    box = Container(widgets=list(widgets), labels=True)
    box.margins = (0, 0, 0, 0)
    return box


def row(*widgets) -> Container:
    """Widgets side by side (buttons), without labels or margins."""
    box = Container(widgets=list(widgets), layout="horizontal", labels=False)
    box.margins = (0, 0, 0, 0)
    return box


def status_label(value: str = "") -> Label:
    """A label for messages of any length: long lines wrap inside the panel's width
    instead of widening the panel past the dock."""
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value=value)
    label.native.setWordWrap(True)
    label.native.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    return label
