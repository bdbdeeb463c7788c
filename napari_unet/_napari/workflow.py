"""The whole loop in one dock: Data, Annotate, Train, Predict, Correct, in order."""

from __future__ import annotations

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QPushButton, QScrollArea, QVBoxLayout, QWidget

from .annotate_panel import AnnotatePanel
from .correct_panel import CorrectPanel
from .data_panel import DataPanel
from .predict_panel import PredictPanel
from .state import Session, session_for
from .train_panel import TrainPanel
from .train_settings import TrainSettings


class Section(QWidget):
    """A step: a title bar that folds and unfolds the step's panel."""

    def __init__(self, title: str, panel: QWidget):
        super().__init__()
        self.title = title
        self.panel = panel
        self.header = QPushButton()
        self.header.setCheckable(True)
        self.header.setChecked(True)
        self.header.setStyleSheet("text-align: left; padding: 4px 8px; font-weight: bold;")
        self.header.toggled.connect(self.set_expanded)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 6)
        layout.setSpacing(2)
        layout.addWidget(self.header)
        layout.addWidget(panel)
        self.set_expanded(True)

    def set_expanded(self, expanded: bool) -> None:
        self.header.setText(("▼  " if expanded else "▶  ") + self.title)
        self.panel.setVisible(expanded)


class WorkflowWidget(QWidget):
    """The five steps stacked in collapsible sections that share one session, scrolling
    above the training controls (Train / Pause / Stop, progress, status, loss), which stay
    in view."""

    def __init__(self, viewer: napari.viewer.Viewer, session: Session | None = None,
                 settings: TrainSettings | None = None):
        super().__init__()
        self.session = session or session_for(viewer)
        self.data = DataPanel(viewer, self.session)
        self.annotate = AnnotatePanel(viewer, self.session)
        self.train = TrainPanel(viewer, self.session, settings, controls_elsewhere=True)
        self.predict = PredictPanel(viewer, self.session)
        self.correct = CorrectPanel(viewer, self.session, train_panel=self.train)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(2)
        self.sections: dict[str, Section] = {}
        for title, panel in (
            ("1. Data", self.data), ("2. Annotate", self.annotate), ("3. Train", self.train),
            ("4. Predict", self.predict), ("5. Correct", self.correct),
        ):
            section = Section(title, panel.native)
            layout.addWidget(section)
            self.sections[title] = section
        layout.addStretch(1)
        self.scroll = QScrollArea()
        self.scroll.setWidget(body)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        line = QFrame()
        line.setFrameShape(QFrame.Shape.HLine)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        outer.addWidget(self.scroll, 1)
        outer.addWidget(line)
        controls = self.train.controls.native
        controls.setContentsMargins(4, 0, 4, 4)
        outer.addWidget(controls)
        needed = max(body.sizeHint().width(), body.minimumSizeHint().width())
        self.setMinimumWidth(needed + self.scroll.verticalScrollBar().sizeHint().width() + 6)
