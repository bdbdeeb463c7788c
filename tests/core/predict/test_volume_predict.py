"""Predicting volumes: 3D tiles, rescaling, the slab preview, 3D objects, stitching,
blocks into OME-Zarr."""

import numpy as np
import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.metrics import instance_scores
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.tiles import Predictor
from napari_unet.core.predict.volume import (
    VolumePredictor,
    slab_range,
    volume_stats,
    zoom_factors,
)
from napari_unet.core.predict.volume_blocks import predict_volume_blocks
from napari_unet.core.predict.volume_instances import (
    predict_stitched,
    stacked_instances,
    stitch_slices,
    volume_instances,
)
from napari_unet.core.predict.volume_layout import default_margin, volume_layout
from napari_unet.core.train.volume_data import VOLUME_NORMALISATION

VOXEL = (0.5, 0.25, 0.25)


def _bundle(kind="annotation", n_classes=2, voxel=VOXEL, seed=0):
    config = UNetConfig(1, n_classes, 4, 2, dims=3, pools=((1, 2, 2), (2, 2, 2)))
    bundle = ModelBundle.new(config, kind, seed=seed, voxel_size=voxel)
    # BatchNorm statistics of a trained model (fresh ones make every tile the same)
    state = dict(bundle.state_dict)
    gen = torch.Generator().manual_seed(seed)
    for k, v in state.items():
        if k.endswith("running_var"):
            state[k] = 0.5 + torch.rand(v.shape, generator=gen)
    bundle.state_dict = state
    return bundle


def _volume(shape=(12, 40, 44), seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(100, 20, shape).astype(np.float32)


def test_3d_tiles_match_one_untiled_pass():
    bundle = _bundle()
    volume = _volume((16, 72, 64))
    whole = VolumePredictor(bundle, device="cpu", tile_voxels=10**7).probabilities(volume)
    for tiled in (VolumePredictor(bundle, device="cpu", tile_voxels=8 * 32 * 32),
                  VolumePredictor(bundle, device="cpu", tile=(8, 32, 32), margin=(4, 16, 16))):
        layout = tiled.layout(volume.shape)
        assert len(layout.corners) > 1 and np.prod(layout.shape) <= 8 * 32 * 32
        calls = []
        probs = tiled.probabilities(volume, progress=lambda i, n, c=calls: c.append((i, n)))
        assert calls[-1] == (len(layout.corners),) * 2
        assert probs.shape == whole.shape == (2, 16, 72, 64)
        np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
        assert np.abs(probs - whole).mean() < 0.02
        assert np.abs(probs - whole).max() < 0.25
    one = VolumePredictor(bundle, device="cpu", tile_voxels=10**7)
    assert len(one.layout(volume.shape).corners) == 1


def test_3d_tiles_predict_few_voxels_twice_within_their_budget():
    multiple, margin = (4, 8, 8), default_margin((4, 8, 8))
    assert margin == (8, 16, 16)
    for sizes, budget in [((32, 256, 256), 1_200_000), ((40, 300, 200), 1_000_000),
                          ((512, 1024, 1024), 1_200_000), ((7, 50, 30), 8 * 40 * 32)]:
        layout = volume_layout(sizes, multiple, margin, budget)
        assert np.prod(layout.shape) <= budget
        assert all(t % m == 0 for t, m in zip(layout.shape, multiple))
        covered = np.zeros(sizes, bool)
        for corner in layout.corners:
            covered[tuple(slice(c, c + t) for c, t in zip(corner, layout.shape))] = True
        assert covered.all()
        for starts, t, m, n in zip(layout.starts, layout.shape, layout.margin, sizes):
            if len(starts) == 1:
                assert m == 0 and t >= n  # no margin along an axis that fits in one tile
            else:  # neighbours share at least the margin
                assert min(a + t - b for a, b in zip(starts, starts[1:])) >= m
    # a volume of two tiles' voxels: the margin of one cut, not a share of every side
    layout = volume_layout((32, 256, 256), multiple, margin, 1_200_000)
    assert layout.predicted((32, 256, 256)) <= 1.1 * 32 * 256 * 256
    # as large as the budget allows: one tile when the volume fits
    assert volume_layout((24, 40, 40), multiple, margin, 10**6).corners == [(0, 0, 0)]


def test_a_volume_of_another_voxel_size_is_zoomed_to_the_models_and_back():
    assert zoom_factors((1.0, 0.25, 0.25), VOXEL) == (2.0, 1.0, 1.0)
    assert zoom_factors((0.52, 0.25, 0.25), VOXEL) is None
    assert zoom_factors(None, VOXEL) is None
    predictor = VolumePredictor(_bundle(), device="cpu")
    volume = _volume((6, 40, 44))
    probs = predictor.probabilities(volume, voxel_size=(1.0, 0.125, 0.125))
    assert probs.shape == (2, 6, 40, 44)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)
    as_is = VolumePredictor(_bundle(), device="cpu", rescale=False)
    assert not np.allclose(probs, as_is.probabilities(volume, (1.0, 0.125, 0.125)))


def test_the_slab_preview_is_the_slice_of_the_volume():
    bundle = _bundle()
    assert volume_stats(bundle.normalisation, _volume()) is None  # per slice: nothing kept
    bundle.normalisation = VOLUME_NORMALISATION  # as a 3D model trains: the whole volume
    predictor = VolumePredictor(bundle, device="cpu")
    volume = _volume((24, 40, 40))
    volume[:12] *= 0.3  # a dim half: a slab normalised by its own percentiles differs
    stats = predictor.volume_stats(volume)
    assert stats == volume_stats(predictor.bundle.normalisation, volume)
    whole = predictor.probabilities(volume)[:, 5]
    slab = predictor.slab(volume, 5, stats=stats)
    assert slab.labels.shape == (40, 40) and slab.probabilities.shape == (2, 40, 40)
    assert np.abs(slab.probabilities - whole).mean() < 0.05
    # with the volume's statistics the slab is normalised as the whole volume is
    start, stop = predictor.slab_range(24, 5)
    as_whole = predictor.tiled(predictor.normalised(volume)[:, start:stop])[:, 5 - start]
    np.testing.assert_allclose(slab.probabilities, as_whole, atol=1e-6)
    own = predictor.slab(volume, 5)  # without them: by the slab's own percentiles
    assert not np.allclose(own.probabilities, slab.probabilities, atol=1e-6)
    with pytest.raises(InputError, match="outside"):
        predictor.slab(volume, 24)


def test_the_slab_is_as_thin_as_the_model_reads():
    bundle = _bundle()  # z pooled once: a grid of 2 slices; the slab: 4 slices
    predictor = VolumePredictor(bundle, device="cpu")
    assert predictor.slab_range(24, 11) == slab_range(bundle, 24, 11) == (9, 13)
    assert slab_range(bundle, 24, 0) == (0, 4) and slab_range(bundle, 24, 23) == (20, 24)
    assert slab_range(bundle, 3, 1) == (0, 3)
    # a volume of half the model's z step: twice the slices, zoomed to 4 of the model's
    assert predictor.slab_range(24, 11, (0.25, 0.25, 0.25)) == (7, 15)
    volume = _volume((24, 40, 40))
    cut = volume[7:15]  # what the plugin copies for the preview: the same prediction
    stats = predictor.volume_stats(volume)  # None: this model normalises per slice
    a = predictor.slab(volume, 11, (0.25, 0.25, 0.25), stats=stats)
    b = predictor.slab(cut, 4, (0.25, 0.25, 0.25), stats=stats)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)


def test_wrong_inputs_are_refused_with_a_sentence():
    predictor = VolumePredictor(_bundle(), device="cpu")
    with pytest.raises(InputError, match="volumes"):
        predictor.probabilities(np.zeros((40, 40), np.float32))
    with pytest.raises(InputError, match="fewer than"):
        predictor.probabilities(np.zeros((1, 40, 40), np.float32))
    with pytest.raises(InputError, match="2D model"):
        VolumePredictor(ModelBundle.new(UNetConfig(1, 2, 4, 2)))
    with pytest.raises(InputError, match="voxel size"):
        predictor.probabilities(_volume(), voxel_size=(0, 1, 1))


def _two_touching_balls(shape=(20, 48, 48)):
    z, y, x = np.mgrid[: shape[0], : shape[1], : shape[2]]
    # In micrometres (z 0.5, xy 0.25): two balls of radius 2.5 um, centres 4.5 um apart.
    a = ((z - 10) * 0.5) ** 2 + ((y - 24) * 0.25) ** 2 + ((x - 15) * 0.25) ** 2 <= 2.5**2
    b = ((z - 10) * 0.5) ** 2 + ((y - 24) * 0.25) ** 2 + ((x - 33) * 0.25) ** 2 <= 2.5**2
    truth = np.zeros(shape, np.int32)
    truth[a] = 1
    truth[b] = 2
    return truth


def test_the_3d_watershed_gives_one_id_per_object_across_slices():
    truth = _two_touching_balls()
    foreground = (truth > 0).astype(np.uint8)
    probs = np.stack([1.0 - foreground, foreground]).astype(np.float32)
    objects = volume_instances(probs, foreground, VOXEL, splits=False, min_size=5)
    assert objects.max() == 2
    main = []
    for i in (1, 2):  # each true ball is one predicted id in every slice it spans
        ids, counts = np.unique(objects[truth == i], return_counts=True)
        main.append(ids[counts.argmax()])
        assert counts.max() > 0.95 * counts.sum() and main[-1] > 0
        spans = np.unique(np.nonzero(objects == main[-1])[0])
        np.testing.assert_array_equal(spans, np.unique(np.nonzero(truth == i)[0]))
    assert main[0] != main[1]
    assert instance_scores(objects, truth, volume=True)["f1"] == 1.0
    # seeded by sure interiors (background / interior / boundary models)
    from scipy.ndimage import binary_erosion

    interior = np.stack([binary_erosion(truth == i, iterations=2) for i in (1, 2)]).any(0)
    probs3 = np.stack([1.0 - foreground, interior * 0.9, (foreground & ~interior) * 0.9])
    objects = volume_instances(probs3.astype(np.float32), foreground, VOXEL, splits=True)
    assert instance_scores(objects, truth, volume=True)["f1"] == 1.0


def test_touching_nuclei_whose_interiors_meet_are_two_3d_objects():
    """An instance model sure of the interior of two touching nuclei up to their neck:
    the sure interior is one blob, but its distance transform has a core in each."""
    from scipy.ndimage import binary_erosion

    from napari_unet.core.decision import VOLUME_INTERIOR_PROBABILITY

    truth = _two_touching_balls()
    foreground = truth > 0
    interior = binary_erosion(foreground)  # one voxel of boundary: the neck stays interior
    probs = np.stack([1.0 - foreground, interior * 0.95, (foreground & ~interior) * 0.95])
    from skimage.measure import label as connected

    assert connected(interior, connectivity=3).max() == 1  # sure interiors would merge them
    objects = volume_instances(probs.astype(np.float32), foreground.astype(np.uint8), VOXEL,
                               splits=True)
    assert objects.max() == 2
    assert instance_scores(objects, truth, volume=True)["f1"] == 1.0
    faint = probs.copy()  # below the interior probability: no core, no object
    faint[1] *= 0.9 * VOLUME_INTERIOR_PROBABILITY / 0.95
    assert volume_instances(faint.astype(np.float32), foreground.astype(np.uint8), VOXEL,
                            splits=True).max() == 0


def test_stitching_joins_2d_objects_of_neighbouring_slices():
    truth = _two_touching_balls()
    # A 2D segmentation of each slice, ids numbered per slice (in another order on odd ones)
    per_slice = np.where(np.arange(len(truth))[:, None, None] % 2 == 1, (3 - truth) % 3, truth)
    assert instance_scores(per_slice, truth, volume=True)["f1"] < 1
    stitched = stitch_slices(per_slice)
    assert stitched.max() == 2
    assert instance_scores(stitched, truth, volume=True)["f1"] == 1.0
    apart = np.zeros((3, 10, 10), np.int32)
    apart[0, :3, :3] = 1
    apart[1, 6:, 6:] = 1  # no overlap: another object
    assert stitch_slices(apart).max() == 2


def test_2d_model_predicts_3d_objects_of_a_volume():
    bundle = ModelBundle.new(UNetConfig(1, 2, 4, 2))
    result = predict_stitched(Predictor(bundle, device="cpu"), _volume((4, 32, 32)),
                              (0.5, 0.2, 0.2), min_size=1)
    assert result.instances.shape == (4, 32, 32)
    assert result.instances.dtype == np.int32
    assert result.probabilities is None  # not asked for
    instance_model = ModelBundle.new(UNetConfig(1, 3, 4, 2), "instance")
    result = predict_stitched(Predictor(instance_model, device="cpu"), _volume((4, 32, 32)),
                              probabilities=True, min_size=1)
    assert result.probabilities.shape == (4, 3, 32, 32)


def test_touching_nuclei_stay_two_objects_in_3d_where_overlap_joins_them():
    from skimage.measure import label as connected

    from napari_unet.core.predict.tiles import Prediction

    z, y, x = np.mgrid[:16, :24, :36]
    truth = np.zeros(z.shape, np.int32)
    truth[(z - 8) ** 2 + (y - 12) ** 2 + (x - 11) ** 2 <= 36] = 1
    truth[((z - 8) ** 2 + (y - 12) ** 2 + (x - 23) ** 2 <= 36) & (truth == 0)] = 2
    labels = (truth > 0).astype(np.uint8)  # one blob in the slice where they touch
    per_slice = np.stack([connected(plane) for plane in labels])
    assert per_slice[8].max() == 1
    # overlap hands that slice to one of them and cuts the other in two
    assert instance_scores(stitch_slices(per_slice), truth, volume=True)["f1"] < 1.0
    objects = stacked_instances(Prediction(labels, None, None), (1.0, 1.0, 1.0), splits=False,
                                min_size=5)
    assert objects.max() == 2
    assert instance_scores(objects, truth, volume=True)["f1"] == 1.0
    with pytest.raises(ValueError, match="probabilities"):
        stacked_instances(Prediction(labels, None, None), None, splits=True)


def test_3d_instances_through_the_predictor():
    predictor = VolumePredictor(_bundle("instance", 3), device="cpu")
    assert predictor.splits_instances
    result = predictor.predict(_volume(), VOXEL, instances=True, probabilities=True)
    assert result.labels.shape == result.instances.shape == (12, 40, 44)
    assert result.probabilities.shape == (12, 3, 40, 44)


def test_blocks_into_ome_zarr_match_the_volume_in_memory(tmp_path):
    import zarr

    predictor = VolumePredictor(_bundle(), device="cpu", tile=(8, 32, 32))
    volume = _volume((16, 48, 40))
    predictor.stats = predictor.bundle.normalisation.stats(volume)
    expected = predictor.labels(predictor.probabilities(volume))
    predictor.stats = None
    result = predict_volume_blocks(predictor, volume, tmp_path / "out.ome.zarr",
                                   voxel_size=VOXEL, block=(8, 24, 24), halo=(4, 16, 16),
                                   probabilities=tmp_path / "p.ome.zarr")
    assert result.blocks == 2 * 2 * 2
    group = zarr.open_group(str(tmp_path / "out.ome.zarr"), mode="r")
    labels = np.asarray(group["0"])
    assert group["0"].chunks == (8, 24, 24)
    assert group.attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"][0][
        "scale"] == list(VOXEL)
    assert (labels == expected).mean() > 0.97
    assert np.asarray(zarr.open_group(str(tmp_path / "p.ome.zarr"))["0"]).shape == (
        2, 16, 48, 40)
    with pytest.raises(InputError, match="exists"):
        predict_volume_blocks(predictor, volume, tmp_path / "out.ome.zarr")
