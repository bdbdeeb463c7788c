"""``napari-unet demo``: the sample stack, its starter annotations and the workflow."""

from __future__ import annotations


def open_demo(viewer=None):
    """Load the sample into ``viewer`` (a new one by default) with the workflow docked;
    return ``(viewer, workflow widget)``."""
    import napari

    from .sample_data import nuclei_annotated
    from .workflow import WorkflowWidget

    viewer = viewer or napari.Viewer(title="napari-unet demo")
    for data, meta, kind in nuclei_annotated():
        getattr(viewer, f"add_{kind}")(data, **meta)
    widget = WorkflowWidget(viewer)
    viewer.window.add_dock_widget(widget, name="napari-unet", area="right")
    image = viewer.layers["nuclei"]
    widget.data.image.value = image
    widget.annotate.layer.value = viewer.layers["nuclei annotations"]
    viewer.layers.selection.active = viewer.layers["nuclei annotations"]
    viewer.dims.set_current_step(0, 0)  # a slice with starter annotations
    return viewer, widget


def run_demo() -> None:
    """Open napari with the demo and run its event loop until the window closes."""
    import napari

    open_demo()
    napari.run()
