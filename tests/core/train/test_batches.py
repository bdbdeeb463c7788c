"""Batch sources (napari_unet.core.train.batches)."""

from __future__ import annotations

import numpy as np
import torch

from napari_unet.core.labels import to_annotations
from napari_unet.core.train.data import TrainingData


def test_batches_cut_on_the_device_equal_the_sampler_batches(blob_data):
    """The GPU path (data kept on the device) cuts the same patches as the CPU sampler."""
    from napari_unet.core.train.batches import DeviceBatches
    from napari_unet.core.train.sampling import PatchSampler

    image, labels = blob_data
    weights = np.ones(image.shape, np.float32)
    weights[1] = 2.0
    td = TrainingData.from_annotations([image, image[:1]], [to_annotations(labels, "instance"),
                                       to_annotations(labels[:1], "instance")],
                                       weights=[weights, None], validation_fraction=0)
    a, b = (PatchSampler(td.train, 3, 32, seed=5) for _ in range(2))
    on_device = DeviceBatches(a, 6, torch.device("cpu"))
    for _ in range(3):
        x, y, w = on_device.get()
        xs, ys, ws = b.sample(6)
        assert torch.equal(x, torch.from_numpy(xs)) and torch.equal(y, torch.from_numpy(ys))
        assert y.dtype == torch.int64 and torch.equal(w, torch.from_numpy(ws))
    assert not DeviceBatches.fits(a, torch.device("cpu"))  # the CPU keeps its sampling thread


def test_pairs_read_lazily_are_never_copied_to_the_device(blob_data):
    """A stack opened lazily is sampled on the host, chunk by chunk, even on a GPU."""
    import dask.array as da

    from napari_unet.core.train.batches import DeviceBatches
    from napari_unet.core.train.sampling import PatchSampler

    image, labels = blob_data
    td = TrainingData.from_annotations([da.from_array(image, chunks=(1, 32, 32))],
                                       [to_annotations(labels, "instance")],
                                       validation_fraction=0)
    assert not isinstance(td.train[0].image, np.ndarray)  # a lazy view, not the stack
    sampler = PatchSampler(td.train, td.n_classes, 32, seed=5)
    assert not DeviceBatches.fits(sampler, torch.device("cuda"))
