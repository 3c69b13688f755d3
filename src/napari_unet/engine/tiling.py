"""Overlap tiles: their size, where each starts, which part of it is kept, and how many fit
into the device's memory at once."""

import math


def context(multiple: int) -> int:
    """Pixels each side of a tile that only give context: the U-Net's receptive field reaches
    6 * 2**depth - 2 pixels (two 3x3 convolutions per level down and up), so the centres kept
    never see a tile's border and tiled == whole; a multiple of ``multiple`` = 2**depth."""
    return 6 * multiple


def tile_starts(length: int, tile: int, margin: int, multiple: int) -> list[int]:
    """Start of each tile along an axis of ``length``; starts are multiples of ``multiple``."""
    if tile >= length:
        return [0]
    step = max((tile - 2 * margin) // multiple * multiple, multiple)
    count = math.ceil((length - tile) / step) + 1
    return [min(i * step, length - tile) for i in range(count)]


def kept_ranges(starts: list[int], tile: int, length: int) -> list[tuple[int, int]]:
    """The part of each tile kept: up to the middle of its overlap with each neighbour."""
    cuts = [0] + [(b + a + tile) // 2 for a, b in zip(starts, starts[1:], strict=False)] + [length]
    return list(zip(cuts, cuts[1:], strict=False))


def even_tile(length: int, tile: int, margin: int, multiple: int) -> int:
    """The smallest tile (a multiple of ``multiple``, at most ``tile``) that covers ``length``
    with as few tiles as ``tile`` needs: tiles share the length evenly instead of the last
    one overlapping its neighbour by almost a whole tile."""
    if tile >= length:
        return length
    step = max((tile - 2 * margin) // multiple * multiple, multiple)
    count = math.ceil((length - tile) / step) + 1
    even = math.ceil(math.ceil((length + (count - 1) * 2 * margin) / count) / multiple) * multiple
    return min(tile, max(even, 2 * margin + multiple))


def tiles_2d(height: int, width: int, tile: int, margin: int, multiple: int):
    """(y, x, (keep_y0, keep_y1), (keep_x0, keep_x1)) for every tile of a slice."""
    tile_y = even_tile(height, tile, margin, multiple)
    tile_x = even_tile(width, tile, margin, multiple)
    ys = tile_starts(height, tile_y, margin, multiple)
    xs = tile_starts(width, tile_x, margin, multiple)
    keep_y, keep_x = kept_ranges(ys, tile_y, height), kept_ranges(xs, tile_x, width)
    return (tile_y, tile_x), [
        (y, x, ky, kx)
        for y, ky in zip(ys, keep_y, strict=True)
        for x, kx in zip(xs, keep_x, strict=True)
    ]


def tile_for_memory(
    height: int, width: int, bytes_per_pixel: float, budget: float, multiple: int, smallest: int
) -> int:
    """The whole ``height`` x ``width`` slice as one tile when it fits into ``budget`` bytes,
    else the largest square tile that does (at least ``smallest``)."""
    if height * width * bytes_per_pixel <= budget:
        return max(height, width)
    side = math.isqrt(int(budget / bytes_per_pixel)) // multiple * multiple
    return max(side, smallest)


def batch_for_memory(
    tile_pixels: int, bytes_per_pixel: float, budget: float, max_batch_pixels: int
) -> int:
    """As many tiles per batch as ``budget`` bytes hold, up to ``max_batch_pixels`` pixels."""
    fits = min(budget // (tile_pixels * bytes_per_pixel), max_batch_pixels // tile_pixels)
    return max(1, int(fits))


def balanced_batch(tiles: int, batch: int) -> int:
    """The batch size that splits ``tiles`` into as few batches of at most ``batch`` as
    possible, all of about the same size (fewer distinct shapes for the device to tune)."""
    if tiles <= 0:
        return batch
    return math.ceil(tiles / math.ceil(tiles / batch))
