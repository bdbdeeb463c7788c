import numpy as np
import pytest
import torch

from napari_unet.core.errors import InputError
from napari_unet.core.train.augment import AugmentConfig, Augmenter, cut_size, random_field


def _batch(seed=0, b=4, size=64):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand((b, 1, size, size), generator=g)
    labels = torch.randint(-1, 4, (b, size, size), generator=g)
    return images, labels


def test_label_values_stay_exactly_the_same_set():
    images, labels = _batch()
    labels[:, 10:30, 10:30] = 7  # a rare value far from the others
    aug = Augmenter(AugmentConfig(elastic_sigma=10.0), seed=3)
    for _ in range(5):
        _, out, _ = aug(images, labels)
        assert set(out.unique().tolist()) <= set(labels.unique().tolist())
        assert out.dtype == labels.dtype
    assert 7 in out.unique().tolist()


def test_image_and_labels_move_together():
    # A bright square labelled 1: after deformation the label still marks bright pixels.
    images = torch.zeros((4, 1, 64, 64))
    labels = torch.zeros((4, 64, 64), dtype=torch.long)
    images[:, :, 20:44, 16:40] = 1.0
    labels[:, 20:44, 16:40] = 1
    aug = Augmenter(AugmentConfig(elastic_sigma=6.0, intensity=0.0, noise=0.0), seed=1)
    out_img, out_lab, _ = aug(images, labels)
    inside = out_img[:, 0][out_lab == 1]
    outside = out_img[:, 0][out_lab == 0]
    assert inside.mean() > 0.9 and outside.mean() < 0.1


def test_seeded_and_really_random():
    images, labels = _batch()
    a1 = Augmenter(seed=5)(images, labels)[0]
    a2 = Augmenter(seed=5)(images, labels)[0]
    b = Augmenter(seed=6)(images, labels)[0]
    assert torch.equal(a1, a2)
    assert not torch.equal(a1, b)
    assert not torch.equal(a1, images)


def test_off_means_identity():
    images, labels = _batch()
    aug = Augmenter(AugmentConfig(elastic_sigma=0, flips=False, intensity=0, noise=0))
    out_img, out_lab, _ = aug(images, labels)
    assert torch.equal(out_img, images) and torch.equal(out_lab, labels)


def test_flips_alone_are_exact_dihedral_transforms():
    images, labels = _batch(b=16)
    aug = Augmenter(AugmentConfig(elastic_sigma=0, flips=True, intensity=0, noise=0), seed=2)
    out_img, out_lab, _ = aug(images, labels)
    for i in range(16):
        candidates = []
        for k in range(4):
            r = torch.rot90(images[i, 0], k, (0, 1))
            candidates += [r, torch.flip(r, (1,))]
        assert any(torch.allclose(out_img[i, 0], c, atol=1e-5) for c in candidates)


def test_elastic_field_is_smooth_and_of_the_asked_strength():
    g = torch.Generator().manual_seed(0)
    field = random_field(8, 128, 128, sigma=10.0, grid=64, generator=g)
    assert field.shape == (8, 128, 128, 2)
    assert 4 < field.std().item() < 16
    step = (field[:, 1:] - field[:, :-1]).abs().max().item()
    assert step < 1.0  # neighbouring pixels move almost together: no folding


def test_weights_follow_labels():
    images, labels = _batch()
    weights = (labels == 2).float() * 2 + 1
    _, out_lab, out_w = Augmenter(seed=0)(images, labels, weights)
    assert torch.equal(out_w == 3, out_lab == 2)


@pytest.mark.parametrize("shape", [(32, 48), (64, 64)])
def test_non_square_batches(shape):
    images = torch.rand((2, 1, *shape))
    labels = torch.randint(0, 2, (2, *shape))
    out, lab, _ = Augmenter(seed=0)(images, labels)
    assert out.shape == images.shape and lab.shape == labels.shape
    assert np.isfinite(out.numpy()).all()


def _square(size: int, side: int):
    """A batch of 16 images of ``size`` with a centred bright square labelled 1."""
    images = torch.zeros((16, 1, size, size))
    labels = torch.zeros((16, size, size), dtype=torch.long)
    a = (size - side) // 2
    images[:, :, a:a + side, a:a + side] = 1.0
    labels[:, a:a + side, a:a + side] = 1
    return images, labels


def test_larger_inputs_give_their_centre_at_the_asked_size():
    images, labels = _batch(size=96)
    aug = Augmenter(AugmentConfig(elastic_sigma=0, flips=False, intensity=0, noise=0))
    out_img, out_lab, _ = aug(images, labels, size=64)
    assert out_img.shape == (4, 1, 64, 64) and out_lab.shape == (4, 64, 64)
    assert torch.allclose(out_img, images[:, :, 16:80, 16:80], atol=1e-5)
    assert torch.equal(out_lab, labels[:, 16:80, 16:80])


def test_zoom_shows_objects_at_other_sizes_within_its_range():
    config = AugmentConfig(elastic_sigma=0, flips=False, intensity=0, noise=0, zoom=2.0)
    cut = cut_size(64, config)
    assert cut == 128
    images, labels = _square(cut, 20)
    out_img, out_lab, _ = Augmenter(config, seed=4)(images, labels, size=64)
    assert out_img.shape == (16, 1, 64, 64)
    areas = (out_lab == 1).sum((1, 2)).float()
    assert (areas >= 400 / 4 * 0.8).all() and (areas <= 400 * 4 * 1.2).all()
    assert areas.min() < 300 and areas.max() > 550  # smaller and larger than cut out
    inside = out_img[:, 0][out_lab == 1]
    assert inside.mean() > 0.9  # image and labels zoomed together
    assert set(out_lab.unique().tolist()) <= {0, 1}


def test_zoom_below_one_is_refused():
    for bad in (0.5, float("nan"), 100.0):
        with pytest.raises(InputError, match="zoom"):
            AugmentConfig(zoom=bad)
