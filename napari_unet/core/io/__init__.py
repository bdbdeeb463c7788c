"""Reading and writing images: TIFF and OME-Zarr, axes, channels, voxel size, lazy arrays, sparse labels, output checks."""
