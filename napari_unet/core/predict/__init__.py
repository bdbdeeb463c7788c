"""Prediction: tiles with blended overlaps, labels and instances, blocks into OME-Zarr, many files, clusters."""
