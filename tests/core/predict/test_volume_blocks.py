"""Volumes block by block: the pairs that touch across a face, the blocks and halos, and
the 3D objects of an instance model (seeded by its sure interiors) across block faces."""

import numpy as np
import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.metrics import match_instances
from napari_unet.core.models.checkpoint import ModelBundle
from napari_unet.core.models.unet import UNetConfig
from napari_unet.core.predict.stitch import face_pairs
from napari_unet.core.predict.volume import VolumePredictor
from napari_unet.core.predict.volume_block_tasks import BoxGrid
from napari_unet.core.predict.volume_blocks import block_shape, predict_volume_blocks
from napari_unet.core.train.volume_data import VOLUME_NORMALISATION
from napari_unet.synthetic_volume import VolumeStyle, nuclei_volume

VOXEL = (0.5, 0.2, 0.2)


def test_face_pairs_touch_across_a_face_diagonals_included():
    before = np.array([0, 3, 0, 0, 5])
    after = np.array([7, 0, 0, 8, 0])
    assert face_pairs(before, after).tolist() == [[7, 3], [8, 5]]
    classes = (np.array([0, 1, 0, 0, 2]), np.array([1, 0, 0, 1, 0]))
    assert face_pairs(before, after, classes).tolist() == [[7, 3]]  # 8 and 5 differ
    plane_a = np.zeros((3, 3), int)
    plane_b = np.zeros((3, 3), int)
    plane_a[0, 0], plane_b[1, 1], plane_b[2, 0] = 4, 9, 6  # 9 is diagonal to 4, 6 is not
    assert face_pairs(plane_a, plane_b).tolist() == [[9, 4]]
    assert face_pairs(np.zeros((2, 2)), np.zeros((2, 2))).shape == (0, 2)


def test_blocks_their_halos_and_their_smallest_size():
    grid = BoxGrid((10, 20, 30), (4, 8, 16))
    assert grid.counts == (3, 3, 2) and len(grid) == 18
    assert grid.box(0) == (slice(0, 4), slice(0, 8), slice(0, 16))
    assert grid.box(17) == (slice(8, 10), slice(16, 20), slice(16, 30))
    assert grid.box(17, (1, 2, 3)) == (slice(7, 10), slice(14, 20), slice(13, 30))
    assert grid.box(17, (0, 0, 0), least=(4, 8, 8))[0] == slice(6, 10)  # grown inwards
    assert grid.block_of(grid.box(17, (1, 0, 0)))[:, 0, 0].tolist() == [11, 17, 17]
    assert block_shape(16, (10, 20, 30), (2, 4, 4)) == (10, 16, 16)
    assert block_shape((2, 4, 4), (10, 20, 30), (2, 4, 4)) == (2, 4, 4)
    with pytest.raises(InputError, match="smallest patch"):
        block_shape((1, 8, 8), (10, 20, 30), (2, 4, 4))


class Interiors(torch.nn.Module):
    """An instance model of bright nuclei: the volume blurred over 5 x 5 x 5 voxels,
    then background below 0.2, interior above 0.5 and boundary between (logits
    linear in the blurred intensity)."""

    def __init__(self):
        super().__init__()
        self.blur = torch.nn.Conv3d(1, 1, 5, padding=2, bias=False)
        self.out = torch.nn.Conv3d(1, 3, 1)
        with torch.no_grad():
            self.blur.weight.fill_(1 / 125)
            self.out.weight.copy_(torch.tensor([-12.0, 12.0, 0.0]).view(3, 1, 1, 1, 1))
            self.out.bias.copy_(torch.tensor([12 * 0.2, -12 * 0.5, 0.0]))

    def forward(self, x):
        return self.out(self.blur(x))


def test_objects_of_an_instance_model_block_by_block_are_those_in_memory(tmp_path):
    import zarr

    image, _ = nuclei_volume(np.random.default_rng(4), (16, 64, 64),
                             VolumeStyle(voxel_size=VOXEL, count=10, radius=(1.6, 2.4)))
    config = UNetConfig(1, 3, 4, 2, dims=3, pools=((1, 2, 2), (2, 2, 2)))
    bundle = ModelBundle.new(config, "instance", seed=0, voxel_size=VOXEL,
                             normalisation=VOLUME_NORMALISATION)  # as 3D models train
    predictor = VolumePredictor(bundle, device="cpu", model=Interiors())
    assert predictor.splits_instances
    memory = predictor.predict(image, VOXEL, instances=True, min_size=10).instances
    assert memory.max() >= 4
    out = tmp_path / "objects.ome.zarr"
    # halos smaller than the volume: each block sees only its neighbourhood
    result = predict_volume_blocks(predictor, image, out, voxel_size=VOXEL, block=(8, 32, 32),
                                   halo=(4, 16, 16), object_halo=(8, 24, 24), instances=True,
                                   min_size=10, probabilities=tmp_path / "p.ome.zarr")
    assert result.blocks == 8 and result.objects == memory.max()
    blocks = np.asarray(zarr.open_group(str(out), mode="r")["0"])
    m = match_instances(blocks, memory, threshold=0.9, volume=True)
    assert (m["tp"], m["fp"], m["fn"]) == (memory.max(), 0, 0)
    # objects cut by the block faces are one object on both sides
    for i in np.unique(memory[memory > 0]):
        z, y, x = np.nonzero(memory == i)
        if (z.min() < 8 <= z.max()) or (y.min() < 32 <= y.max()):
            assert len(np.unique(blocks[memory == i])) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.ome.zarr", "p.ome.zarr"]
