"""Models: the U-Net, the one-file model bundle and its safe loading, the device and CPU speed."""
