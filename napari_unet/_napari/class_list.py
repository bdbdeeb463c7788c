"""The class list: names and colours, value 1 is the background."""

from __future__ import annotations

from collections.abc import Callable

from magicgui.widgets import Container, LineEdit, PushButton
from psygnal import Signal

from .combos import row
from .state import GUI_COLORS, ClassSpec


class ClassRow(Container):
    """One class: a paint button showing its value and colour, and its name."""

    def __init__(self, spec: ClassSpec, on_paint: Callable[[int], None]):
        super().__init__(layout="horizontal", labels=False)
        self.margins = (0, 0, 0, 0)
        self.spec = spec
        self.paint = PushButton(text=f"{spec.value}", tooltip="Paint this class")
        self.color = PushButton(text="", tooltip="Change the colour")
        self.name = LineEdit(value=spec.name)
        self.paint.native.setFixedWidth(36)
        self.color.native.setFixedWidth(28)
        self.extend([self.paint, self.color, self.name])
        self.paint.changed.connect(lambda: on_paint(self.spec.value))
        self.set_color(spec.color)

    def set_color(self, color: str) -> None:
        self.spec.color = color
        self.color.native.setStyleSheet(f"background-color: {color}; border-radius: 3px;")


class ClassList(Container):
    """Editable list of classes; emits :attr:`edited` with the new list."""

    edited = Signal(list)
    paint_requested = Signal(int)

    def __init__(self, classes: list[ClassSpec]):
        super().__init__(labels=False)
        self.margins = (0, 0, 0, 0)
        self.rows = Container(labels=False)
        self.rows.margins = (0, 0, 0, 0)
        self.add = PushButton(text="Add class")
        self.remove = PushButton(text="Remove last")
        self.extend([self.rows, row(self.add, self.remove)])
        self.add.changed.connect(self.add_class)
        self.remove.changed.connect(self.remove_class)
        self.set_classes(classes)

    @property
    def classes(self) -> list[ClassSpec]:
        return [ClassSpec(row.spec.value, row.name.value.strip() or f"class {i}", row.spec.color)
                for i, row in enumerate(self.rows)]

    def set_classes(self, classes: list[ClassSpec]) -> None:
        if [(c.name, c.color) for c in classes] == [(c.name, c.color) for c in self.classes]:
            return
        self.rows.clear()
        for spec in classes:
            row = ClassRow(ClassSpec(spec.value, spec.name, spec.color), self.paint_requested.emit)
            row.name.changed.connect(self._emit)
            row.color.changed.connect(lambda _=None, r=row: self._pick_color(r))
            self.rows.append(row)
        self.remove.enabled = len(classes) > 2

    def add_class(self) -> None:
        classes = self.classes
        n = len(classes)
        classes.append(ClassSpec(n + 1, f"class {n}", GUI_COLORS[n % len(GUI_COLORS)]))
        self.set_classes(classes)
        self._emit()

    def remove_class(self) -> None:
        classes = self.classes
        if len(classes) > 2:
            self.set_classes(classes[:-1])
            self._emit()

    def _pick_color(self, row: ClassRow) -> None:
        from qtpy.QtGui import QColor
        from qtpy.QtWidgets import QColorDialog

        color = QColorDialog.getColor(QColor(row.spec.color), self.native, "Class colour")
        if color.isValid():
            row.set_color(color.name())
            self._emit()

    def _emit(self, *_args) -> None:
        self.edited.emit(self.classes)
