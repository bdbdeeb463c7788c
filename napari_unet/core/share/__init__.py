"""Sharing models: bioimage.io packages written (with a test prediction) and read back."""
