"""napari contributions of napari-unet: reader, writer, sample data and dock widgets.

Everything here speaks to napari and Qt; the engine lives in :mod:`napari_unet.core`.
Modules that train or predict import torch inside their handlers, so opening napari
and the plugin's widgets stays cheap.
"""

from napari_unet._napari import _native

# Before anything in napari can import torch's triton: see _native.
_native.install()
