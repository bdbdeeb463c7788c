"""A small live loss curve, painted with QPainter so that redrawing costs well under a
millisecond of the GUI thread (a matplotlib canvas takes tens of milliseconds)."""

from __future__ import annotations

import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPainterPath, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

LINE = QColor("#ff7f0e")


def _theme_colors() -> tuple[QColor, QColor]:
    try:
        from napari.settings import get_settings
        from napari.utils.theme import get_theme

        theme = get_theme(get_settings().appearance.theme)
        return QColor(theme.foreground.as_hex()), QColor(theme.text.as_hex())
    except Exception:  # an unknown theme: use the dark default
        return QColor("#414851"), QColor("#f0f1f2")


class LossPlot(QWidget):
    """Loss per iteration (faint) and its running mean (bold), on a log scale."""

    def __init__(self, height: int = 130):
        super().__init__()
        self.setFixedHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self._background, self._text = _theme_colors()
        self.iterations: list[int] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []

    def clear(self) -> None:
        self.iterations.clear()
        self.losses.clear()
        self.smoothed.clear()
        self.update()

    def add(self, iteration: int, loss: float) -> None:
        self.iterations.append(iteration)
        self.losses.append(loss)
        prev = self.smoothed[-1] if self.smoothed else loss
        self.smoothed.append(0.9 * prev + 0.1 * loss)
        self.update()  # Qt merges repaints: at most one per frame

    def redraw(self) -> None:
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), self._background)
        font = QFont(painter.font())
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
        painter.setFont(font)
        painter.setPen(self._text)
        frame = QRectF(self.rect()).adjusted(52, 8, -8, -20)
        painter.drawText(QRectF(frame.left(), frame.bottom() + 3, frame.width(), 16),
                         Qt.AlignmentFlag.AlignHCenter, "iteration")
        if len(self.losses) < 2:
            painter.drawText(frame, Qt.AlignmentFlag.AlignCenter, "loss curve appears here")
            painter.end()
            return
        values = [v for v in self.losses if v > 0 and math.isfinite(v)] or [1.0]
        ranked = sorted(values)  # the floor ignores the rare near-zero batch
        lo, hi = math.log10(ranked[len(ranked) // 50]), math.log10(ranked[-1])
        if hi - lo < 0.1:
            lo, hi = lo - 0.05, hi + 0.05
        x0, x1 = self.iterations[0], max(self.iterations[-1], self.iterations[0] + 1)

        def point(i: int, v: float) -> QPointF:
            fx = (i - x0) / (x1 - x0)
            fy = (math.log10(max(v, 10**lo)) - lo) / (hi - lo)
            return QPointF(frame.left() + fx * frame.width(), frame.bottom() - fy * frame.height())

        align = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        for frac, value in ((0.0, 10**lo), (1.0, 10**hi)):
            y = frame.bottom() - frac * frame.height()
            painter.drawText(QRectF(0, y - 8, frame.left() - 4, 16), align, f"{value:.2g}")
        painter.drawText(QRectF(frame.left(), frame.bottom() + 3, 60, 16),
                         Qt.AlignmentFlag.AlignLeft, str(x0))
        painter.drawText(QRectF(frame.right() - 60, frame.bottom() + 3, 60, 16),
                         Qt.AlignmentFlag.AlignRight, str(self.iterations[-1]))
        painter.setPen(QPen(self._text, 0.6))
        painter.drawRect(frame)
        step = max(1, len(self.losses) // max(1, int(frame.width())))
        for series, alpha, width in ((self.losses, 90, 1.0), (self.smoothed, 255, 2.0)):
            path = QPainterPath(point(self.iterations[0], series[0]))
            for k in range(step, len(series), step):
                path.lineTo(point(self.iterations[k], series[k]))
            path.lineTo(point(self.iterations[-1], series[-1]))
            color = QColor(LINE)
            color.setAlpha(alpha)
            painter.setPen(QPen(color, width))
            painter.drawPath(path)
        painter.end()
