"""A small live loss curve (matplotlib in the dock), redrawn at most twice a second."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy


def _theme_colors() -> tuple[str, str]:
    try:
        from napari.settings import get_settings
        from napari.utils.theme import get_theme

        theme = get_theme(get_settings().appearance.theme)
        return theme.foreground.as_hex(), theme.text.as_hex()
    except Exception:  # an unknown theme: use the dark default
        return "#414851", "#f0f1f2"


class LossPlot(FigureCanvasQTAgg):
    """Loss per iteration (faint) and its running mean (bold)."""

    def __init__(self, height: int = 150):
        background, text = _theme_colors()
        figure = Figure(figsize=(3.2, height / 100), dpi=100, facecolor=background,
                        layout="constrained")
        super().__init__(figure)
        self.setFixedHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        ax = self.axes = figure.add_subplot()
        ax.set_facecolor(background)
        for spine in ax.spines.values():
            spine.set_color(text)
        ax.tick_params(colors=text, labelsize=7)
        ax.set_xlabel("iteration", color=text, fontsize=8)
        ax.set_ylabel("loss", color=text, fontsize=8)
        (self._raw,) = ax.plot([], [], color="#ff7f0e", alpha=0.35, linewidth=0.8)
        (self._mean,) = ax.plot([], [], color="#ff7f0e", linewidth=1.8)
        self.iterations: list[int] = []
        self.losses: list[float] = []
        self._smoothed: list[float] = []
        self._last_draw = 0.0

    def clear(self) -> None:
        self.iterations.clear()
        self.losses.clear()
        self._smoothed.clear()
        self.redraw()

    def add(self, iteration: int, loss: float) -> None:
        self.iterations.append(iteration)
        self.losses.append(loss)
        prev = self._smoothed[-1] if self._smoothed else loss
        self._smoothed.append(0.9 * prev + 0.1 * loss if self._smoothed else loss)
        if time.perf_counter() - self._last_draw > 0.5:
            self.redraw()

    def redraw(self) -> None:
        self._raw.set_data(self.iterations, self.losses)
        self._mean.set_data(self.iterations, self._smoothed)
        self.axes.relim()
        self.axes.autoscale_view()
        self.draw_idle()
        self._last_draw = time.perf_counter()
