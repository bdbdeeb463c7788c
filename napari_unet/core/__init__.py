"""The headless engine: numpy, torch, tifffile and scikit-image only.

Nothing in this package imports Qt, napari or magicgui (an import-linter contract in
pyproject.toml and ``tests/core/test_boundaries.py`` check it). Submodules are imported
explicitly (``from napari_unet.core import train``) so that light modules such as
``io`` and ``data`` never pull in torch.
"""
