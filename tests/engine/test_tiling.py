"""Overlap tiles: where they start, the part of each that is kept, their size, and how many
fit into the memory of the device."""

import numpy as np
import pytest

from napari_unet.engine.tiling import (
    balanced_batch,
    batch_for_memory,
    context,
    even_tile,
    kept_ranges,
    tile_for_memory,
    tile_starts,
    tiles_2d,
)


def test_tiles_cover_the_axis_once_and_start_on_the_pooling_grid():
    starts = tile_starts(1008, 256, 32, 16)
    assert all(s % 16 == 0 for s in starts)
    assert starts[-1] + 256 == 1008
    ranges = kept_ranges(starts, 256, 1008)
    assert ranges[0][0] == 0 and ranges[-1][1] == 1008
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    for start, (lo, hi) in zip(starts, ranges, strict=True):
        assert lo >= start and hi <= start + 256
        assert lo == 0 or lo - start >= 32
        assert hi == 1008 or start + 256 - hi >= 32


def test_tiles_share_the_length_evenly_and_fit_the_memory():
    assert even_tile(1024, 512, 48, 8) == 408  # 3 tiles of 408 instead of 3 of 512
    starts = tile_starts(1024, 408, 48, 8)
    assert len(starts) == 3 and starts[-1] + 408 == 1024
    assert even_tile(300, 512, 48, 8) == 300
    assert tile_for_memory(512, 512, 100.0, 512 * 512 * 100, 16, 208) == 512
    assert tile_for_memory(4096, 4096, 100.0, 1024 * 1024 * 100, 16, 208) == 1024
    assert tile_for_memory(4096, 4096, 100.0, 10.0, 16, 208) == 208
    assert batch_for_memory(512 * 512, 100.0, 40 * 512 * 512 * 100, 2**23) == 32
    assert batch_for_memory(512 * 512, 100.0, 3 * 512 * 512 * 100, 2**23) == 3
    assert batch_for_memory(512 * 512, 100.0, 1.0, 2**23) == 1
    assert balanced_batch(120, 32) == 30
    assert balanced_batch(5, 32) == 5


def test_the_context_of_a_tile_covers_the_receptive_field():
    for depth in range(1, 6):
        multiple = 2**depth
        assert context(multiple) % multiple == 0
        assert context(multiple) >= 6 * 2**depth - 2


@pytest.mark.parametrize(
    ("height", "width", "tile", "margin", "multiple"),
    [
        (208, 320, 160, 24, 8),
        (512, 512, 512, 48, 8),
        (1008, 96, 256, 48, 16),
        (64, 64, 32, 12, 4),
        (4096, 4096, 1024, 96, 16),
    ],
)
def test_the_kept_parts_of_the_tiles_cover_each_pixel_once_away_from_tile_borders(
    height, width, tile, margin, multiple
):
    (tile_y, tile_x), tiles = tiles_2d(height, width, tile, margin, multiple)
    assert tile_y <= min(tile, height) and tile_x <= min(tile, width)
    covered = np.zeros((height, width), np.uint8)
    for y, x, (y0, y1), (x0, x1) in tiles:
        assert y % multiple == 0 and x % multiple == 0
        assert y >= 0 and y + tile_y <= height and x >= 0 and x + tile_x <= width
        assert y <= y0 < y1 <= y + tile_y and x <= x0 < x1 <= x + tile_x
        assert y0 == 0 or y0 - y >= margin
        assert y1 == height or y + tile_y - y1 >= margin
        assert x0 == 0 or x0 - x >= margin
        assert x1 == width or x + tile_x - x1 >= margin
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()


def test_an_axis_no_longer_than_the_tile_is_one_tile():
    assert tile_starts(300, 512, 48, 8) == [0]
    assert kept_ranges([0], 512, 300) == [(0, 300)]
    assert even_tile(300, 512, 48, 8) == 300
    assert tiles_2d(40, 48, 512, 48, 8) == ((40, 48), [(0, 0, (0, 40), (0, 48))])


def test_even_tiles_are_on_the_grid_and_no_more_than_the_tiles_asked_for():
    for length in range(257, 3000, 37):
        even = even_tile(length, 256, 48, 16)
        assert even <= 256 and even % 16 == 0 and even >= 2 * 48 + 16
        assert len(tile_starts(length, even, 48, 16)) == len(tile_starts(length, 256, 48, 16))


def test_memory_sizes_round_down_to_the_grid_and_batches_are_balanced():
    assert tile_for_memory(1000, 1000, 1.0, 500 * 500 + 10, 16, 32) == 496
    assert batch_for_memory(100, 1.0, 1e9, 1000) == 10  # capped by the pixels of a batch
    assert balanced_batch(17, 8) == 6  # 3 batches of 6, 6 and 5 instead of 8, 8 and 1
    assert balanced_batch(16, 8) == 8
    assert balanced_batch(0, 8) == 8
