"""Scan's tiling: owned blocks partition what the tiles cover, each inside its own tile."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

import daskgp as gp
from daskgp.io.blocks import axis_positions, owned_bounds, scan_tiling


@given(first=st.integers(-50, 50), extent=st.integers(0, 60), stride=st.integers(1, 12),
       extra=st.integers(0, 10), begin=st.integers(-20, 20))
def test_owned_blocks_partition_the_tiles(first, extent, stride, extra, begin):
    positions = axis_positions(first, first + extent, stride)
    size = stride + extra  # an array at least as large as the stride (e.g. input with context)
    bounds = owned_bounds(positions, stride, begin, size)
    tiles = [(begin + p, begin + p + size) for p in positions]
    assert positions[0] == first and positions[-1] == first + extent
    assert all(b - a <= stride for a, b in itertools.pairwise(positions))
    assert bounds == sorted(set(bounds)), "blocks are non-empty and in order"
    assert (bounds[0], bounds[-1]) == (tiles[0][0], tiles[-1][1]), "blocks cover all tiles"
    for j, (tile_begin, tile_end) in enumerate(tiles):
        assert tile_begin <= bounds[j] and bounds[j + 1] <= tile_end, "a tile owns its own data"
        assert (bounds[j] - bounds[0]) % stride == 0, "blocks start on the stride grid"


def test_tiling_of_a_roi():
    tiling = scan_tiling(gp.Roi((0, 4), (13, 1)), gp.Coordinate(5, 8))
    assert tiling.grid_shape == (4, 1)
    reference = gp.Roi((-2, 0), (9, 8))
    assert tiling.total_roi(reference) == gp.Roi((-2, 4), (21, 8))
    owned = [tiling.owned_roi(reference, index) for index in tiling.indices()]
    assert [r.begin[0] for r in owned] == [-2, 3, 8, 13]
    assert sum(r.size for r in owned) == tiling.total_roi(reference).size
