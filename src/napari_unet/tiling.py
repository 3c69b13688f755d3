"""Overlap tiles: where each tile starts, and which part of it is kept."""

import math


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


def tiles_2d(height: int, width: int, tile: int, margin: int, multiple: int):
    """(y, x, (keep_y0, keep_y1), (keep_x0, keep_x1)) for every tile of a slice."""
    tile_y, tile_x = min(tile, height), min(tile, width)
    ys = tile_starts(height, tile_y, margin, multiple)
    xs = tile_starts(width, tile_x, margin, multiple)
    keep_y, keep_x = kept_ranges(ys, tile_y, height), kept_ranges(xs, tile_x, width)
    return (tile_y, tile_x), [
        (y, x, ky, kx)
        for y, ky in zip(ys, keep_y, strict=True)
        for x, kx in zip(xs, keep_x, strict=True)
    ]
