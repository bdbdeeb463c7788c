"""The panels: the demo, the plugin menu, the class list, counts and brush."""

from __future__ import annotations

import numpy as np
import pytest

from napari_unet import PLUGIN_NAME
from napari_unet._napari.demo import open_demo

pytestmark = pytest.mark.filterwarnings("error:Private attribute access")


def test_demo_opens_the_sample_with_the_workflow(make_napari_viewer):
    viewer, widget = open_demo(make_napari_viewer())
    assert [layer.name for layer in viewer.layers] == ["nuclei", "nuclei annotations"]
    assert widget.session.image == viewer.layers["nuclei"]
    assert widget.session.annotations == viewer.layers["nuclei annotations"]
    assert "Annotated slices: 2 of 5 (0, 1)" in widget.annotate.counts.value
    assert "5 × 256 × 256" in widget.data.info.value
    settings = widget.train.settings
    assert settings.budget == "seconds" and settings.seconds <= 45
    assert widget.train.model.options()["start_model"] == "nuclei"


def test_plugin_menu_widgets_share_one_session(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN_NAME, "nuclei")
    data_dock, data = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, "1. Data")
    _, annotate = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, "2. Annotate")
    _, train = viewer.window.add_plugin_dock_widget(PLUGIN_NAME, "3. Train")
    assert data.session is annotate.session is train.session
    data.image.value = viewer.layers["nuclei"]
    layer = annotate.create_layer()
    assert train.session.annotations == layer
    # Closing one panel leaves the others working.
    viewer.window.remove_dock_widget(data_dock)
    viewer.add_image(np.zeros((3, 64, 64), np.uint16), name="second")
    annotate.session.set_image(viewer.layers["second"])
    assert annotate.layer.value is None or annotate.layer.value.name != "nuclei annotations"


def test_class_list_and_brush(annotated_workflow):
    viewer, widget = annotated_workflow
    annotate = widget.annotate
    annotate.class_list.add_class()
    classes = widget.session.classes
    assert [c.value for c in classes] == [1, 2, 3]
    layer = viewer.layers["nuclei annotations"]
    assert 3 in layer.colormap.color_dict
    annotate.class_list.rows[2].name.value = "dividing"
    assert widget.session.classes[2].name == "dividing"
    annotate.brush.value = 17
    annotate.paint_class(3)
    assert layer.selected_label == 3 and layer.brush_size == 17 and layer.mode == "paint"
    layer.paint((0, 128, 128), 3)
    annotate.update_counts()
    assert "dividing:" in annotate.counts.value
    annotate.class_list.remove_class()
    assert len(widget.session.classes) == 2


def test_training_controls_in_view_at_1280x800(make_napari_viewer, qtbot):
    """Train / Pause / Stop, progress, status and the loss curve are on screen without
    scrolling in a 1280x800 window; the rarely changed settings are folded away."""
    viewer, widget = open_demo(make_napari_viewer(show=True))
    window = viewer.window._qt_window
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.height() <= 800 and widget.height() > 0, timeout=3000)
    qtbot.wait(100)
    train = widget.train
    for control in (train.start.native, train.pause.native, train.stop.native,
                    train.progress.native, train.status.native, train.plot):
        assert control.isVisible()
        assert not control.visibleRegion().isEmpty()
        top = control.mapTo(window, control.rect().topLeft()).y()
        assert top >= 0 and top + control.height() <= window.height()
    assert not train.form.advanced.isExpanded()
    assert train.form.advanced.content().height() == 0
    assert train.form.patch_size.native.visibleRegion().isEmpty()


def test_long_status_messages_wrap_instead_of_widening_the_panel(empty_workflow, qtbot):
    """A status line longer than the dock (a long image name, several slices resized)
    wraps: no panel grows wider than the dock, so nothing is cut off at its right edge."""
    _viewer, widget = empty_workflow
    body = widget.scroll.widget()
    before = body.minimumSizeHint().width()
    message = ("Predicted the whole image of 'a very long image name from the microscope "
               "export, series 12, channel 2'. 6 slices shrunk to 41-50 % of their size: "
               "their objects look larger than the model's.")
    for label in (widget.predict.status, widget.correct.status, widget.predict.folder.status,
                  widget.train.status):
        label.value = message
    qtbot.wait(50)
    assert body.minimumSizeHint().width() <= before
    assert widget.train.controls.native.minimumSizeHint().width() <= widget.width()
    status = widget.predict.status.native
    assert status.height() >= 2 * status.fontMetrics().height()  # wrapped, not cut
