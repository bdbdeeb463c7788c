"""napari-unet: paint a few strokes, train a U-Net, correct, retrain.

Importing this package is cheap: torch is imported only by the modules that train or
predict (``napari_unet.core.model``, ``train``, ``predict``, ``checkpoint``).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
