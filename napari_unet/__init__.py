"""napari-unet: paint a few strokes, train a U-Net, correct, retrain.

Importing this package is cheap: torch is imported only by the modules that train or
predict (``napari_unet.core.models.unet``, ``train``, ``predict``, ``checkpoint``).
"""

__version__ = "0.1.0"

#: The distribution name on PyPI and the plugin's name in napari (the manifest says the same).
PLUGIN_NAME = "napari-unet-trainer"

__all__ = ["PLUGIN_NAME", "__version__"]
