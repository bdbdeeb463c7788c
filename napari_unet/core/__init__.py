"""The headless engine: numpy, torch, tifffile, scikit-image, dask and zarr; no Qt.

Sub-packages by role, imported downwards only (import-linter contracts in
pyproject.toml check it):

- ``io``: reading and writing images (TIFF, OME-Zarr, channels, lazy arrays, sparse
  labels, checks on output paths);
- ``models``: the U-Net, the one-file model bundle, the device and CPU speed it runs at;
- ``train``: planning a run, training data, sampling, augmentation, losses, the trainer;
- ``predict``: tiles, slice by slice, blocks into OME-Zarr, many files, clusters;
- ``share``: bioimage.io packages, written and read back.

The modules at this level are the vocabulary they share: errors, settings and defaults
(``config``), label conventions, normalisation, the foreground decision, object size
(``scale``), metrics, corrections. Submodules are imported
explicitly (``from napari_unet.core.train import trainer``) so that light modules such
as ``io.tiff`` never pull in torch.
"""
