"""Ranking the regions of Where next?: windows of the most uncertain unannotated pixels."""

import numpy as np
import pytest

from napari_unet.core.predict.guidance import changed_since, full_window, next_regions


def spots(shape, centres, value=1.0, side=8):
    u = np.zeros(shape, np.float32)
    for c in centres:
        u[tuple(slice(max(0, v - side // 2), v + side // 2) for v in c)] = value
    return u


def test_best_window_holds_the_most_uncertain_spot_then_the_next():
    u = spots((128, 128), [(30, 30)], 1.0) + spots((128, 128), [(100, 90)], 0.5)
    regions = next_regions(u, None, 32, n=5)
    assert len(regions) == 2  # no other window holds any uncertainty
    first, second = regions
    assert first.score > second.score
    assert all(s.start <= 30 < s.stop for s in first.slices)
    assert first.slices[0].start <= 100 < first.slices[0].stop or \
        second.slices[0].start <= 100 < second.slices[0].stop
    assert [b - a for a, b in zip(first.start, first.stop)] == [32, 32]
    assert first.mean == pytest.approx(first.score / first.pixels)


def test_regions_do_not_overlap():
    u = np.random.default_rng(1).random((200, 200)).astype(np.float32)
    regions = next_regions(u, None, 40, n=12)
    assert len(regions) == 12
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            overlap = all(sa.start < sb.stop and sb.start < sa.stop
                          for sa, sb in zip(a.slices, b.slices))
            assert not overlap
        assert all(0 <= s.start < s.stop <= 200 for s in a.slices)


def test_annotated_pixels_do_not_count():
    u = spots((96, 96), [(20, 20), (70, 70)], 1.0)
    ann = np.zeros(u.shape, np.uint8)
    ann[10:30, 10:30] = 2  # the first spot is annotated already
    regions = next_regions(u, ann, 24, n=3)
    assert len(regions) == 1
    assert all(s.start <= 70 < s.stop for s in regions[0].slices)


def test_excluded_windows_drop_out():
    u = spots((96, 96), [(20, 20), (70, 70)], 1.0)
    u += 0.01
    exclude = np.zeros(u.shape, bool)
    exclude[21, 21] = True  # painted there since the last training
    regions = next_regions(u, None, 24, n=10, exclude=exclude)
    assert regions and not any(r.slices[0].start <= 21 < r.slices[0].stop
                               and r.slices[1].start <= 21 < r.slices[1].stop for r in regions)
    assert all(s.start <= 70 < s.stop for s in regions[0].slices)


def test_stack_windows_lie_on_one_slice_and_rank_across_slices():
    u = np.zeros((4, 64, 64), np.float32)
    u[2] = spots((64, 64), [(40, 40)], 1.0)
    u[0] = spots((64, 64), [(10, 10)], 0.4)
    regions = next_regions(u, np.zeros(u.shape, np.uint8), 16, n=2)
    assert [r.start[0] for r in regions] == [2, 0]
    assert all(r.stop[0] == r.start[0] + 1 for r in regions)
    assert regions[0].start[1] <= 40 < regions[0].stop[1]


def test_volume_windows_and_small_images():
    u = spots((20, 40, 40), [(10, 20, 20)], 1.0, side=4)
    (region,) = next_regions(u, None, (8, 16, 16), n=1)
    assert [b - a for a, b in zip(region.start, region.stop)] == [8, 16, 16]
    assert all(s.start <= c < s.stop for s, c in zip(region.slices, (10, 20, 20)))
    assert full_window((10, 12), 128) == (10, 12)  # clipped to the image
    (whole,) = next_regions(np.full((10, 12), 0.5, np.float32), None, 128, n=3)
    assert whole.start == (0, 0) and whole.stop == (10, 12)


def test_large_slice_is_ranked_on_a_stride():
    u = spots((2048, 1536), [(1500, 300)], 1.0, side=64)
    (region,) = next_regions(u, None, 256, n=1)
    assert all(s.start <= c < s.stop for s, c in zip(region.slices, (1500, 300)))


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        next_regions(np.zeros((8, 8)), np.zeros((8, 9)), 4)
    with pytest.raises(ValueError):
        next_regions(np.zeros((8, 8)), None, (2, 4, 4))


def test_changed_since():
    before = np.zeros((4, 4), np.uint8)
    now = before.copy()
    now[1, 1] = 2
    assert changed_since(before, now).sum() == 1
    assert changed_since(None, now).sum() == 1
