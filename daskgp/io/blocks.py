"""How ``Scan`` tiles a volume, which block of its output each tile owns, and the context in
which writers (``ZarrWrite``, ``Hdf5Write``) learn the blocks they write.

Pure functions of ROIs and coordinates; nothing here reads or writes data.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..geometry import Coordinate, Roi


def axis_positions(first: int, last: int, stride: int) -> list[int]:
    """Tile positions ``first, first + stride, ...`` along one axis; the last one is clamped to
    ``last`` so that the tiles end exactly where the scanned range ends (gunpowder's rule).

    Example:
        >>> axis_positions(0, 12, 5)
        [0, 5, 10, 12]
        >>> axis_positions(3, 3, 5)
        [3]
    """
    positions = list(range(first, last, stride))
    return positions + [last]


def owned_bounds(positions: Sequence[int], stride: int, begin: int, size: int) -> list[int]:
    """Boundaries ``b_0 < ... < b_n`` of the blocks owned by the ``n`` tiles at ``positions``
    along one axis, for an array whose reference ROI starts at ``begin`` with ``size``.

    Tile ``j`` owns ``[b_j, b_{j+1})``: every block but the last starts ``stride`` after the
    previous one, so the blocks lie on a grid of pitch ``stride`` from the first tile, and the
    last (clamped) tile owns what remains up to its end. Owned blocks never overlap, cover all
    tiles, and each lies inside its own tile (``size >= stride``).

    Example:
        >>> owned_bounds([0, 5, 10, 12], 5, 0, 5)
        [0, 5, 10, 15, 17]
        >>> owned_bounds([0, 5, 10, 12], 5, -2, 9)  # a larger array (input with context)
        [-2, 3, 8, 13, 19]
    """
    first = begin + positions[0]
    return [first + j * stride for j in range(len(positions))] + [begin + positions[-1] + size]


@dataclass(frozen=True)
class ScanTiling:
    """The tiles of one scan: per-axis tile positions (shifts of the reference request) and the
    stride between them, both in world units.

    Example:
        >>> tiling = ScanTiling(((0, 10, 12), (0,)), Coordinate(10, 8))
        >>> [tuple(s) for s in tiling.shifts()]
        [(0, 0), (10, 0), (12, 0)]
        >>> tiling.owned_roi(Roi((0, 0), (10, 8)), (2, 0))
        [20:22, 0:8] (2, 8)
    """

    positions: tuple[tuple[int, ...], ...]
    stride: Coordinate

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Number of tiles along each axis."""
        return tuple(len(p) for p in self.positions)

    def indices(self) -> Iterator[tuple[int, ...]]:
        """Tile indices, in C order (the last axis fastest)."""
        return itertools.product(*(range(n) for n in self.grid_shape))

    def shifts(self) -> Iterator[Coordinate]:
        """The shift of the reference request for every tile, in ``indices()`` order."""
        for index in self.indices():
            yield self.shift(index)

    def shift(self, index: Sequence[int]) -> Coordinate:
        """The shift of the reference request for tile ``index``."""
        return Coordinate(p[i] for p, i in zip(self.positions, index, strict=True))

    def bounds(self, reference_roi: Roi) -> list[list[int]]:
        """Per axis, the owned-block boundaries of an array with ``reference_roi``."""
        return [
            owned_bounds(p, s, b, n)
            for p, s, b, n in zip(self.positions, self.stride, reference_roi.begin,
                                  reference_roi.shape, strict=True)
        ]

    def owned_roi(self, reference_roi: Roi, index: Sequence[int]) -> Roi:
        """The block that tile ``index`` owns of an array with ``reference_roi``."""
        bounds = self.bounds(reference_roi)
        begin = Coordinate(b[i] for b, i in zip(bounds, index, strict=True))
        end = Coordinate(b[i + 1] for b, i in zip(bounds, index, strict=True))
        return Roi(begin, end - begin)

    def total_roi(self, reference_roi: Roi) -> Roi:
        """What all tiles together cover of an array with ``reference_roi``."""
        bounds = self.bounds(reference_roi)
        begin = Coordinate(b[0] for b in bounds)
        return Roi(begin, Coordinate(b[-1] for b in bounds) - begin)


def scan_tiling(shift_roi: Roi, stride: Coordinate) -> ScanTiling:
    """The tiling that covers every shift in ``shift_roi`` (all shifts that keep the reference
    inside the scanned ROIs), stepping by ``stride`` with the last tile clamped.

    Example:
        >>> scan_tiling(Roi((0,), (13,)), Coordinate(5,)).positions
        ((0, 5, 10, 12),)
    """
    last = shift_roi.end - Coordinate((1,) * shift_roi.dims)
    return ScanTiling(
        tuple(tuple(axis_positions(f, la, s)) for f, la, s in
              zip(shift_roi.begin, last, stride, strict=True)),
        Coordinate(stride),
    )


@dataclass
class WriteBlocks:
    """What a writer upstream of ``Scan`` needs while one tile is planned.

    Attributes:
        total_rois (dict, ArrayKey -> Roi): what the whole scan writes of each key; writers
            create their datasets with this ROI.
        block_shape (Coordinate): the scan's stride, in world units: output chunks of this
            shape align with every write.
        write_rois (dict, ArrayKey -> Roi): the block the current tile owns of each key; a
            writer writes this block only, so no two tiles write the same chunk.
        scan_id (int): the same for every tile of one scan, new for the next scan.
    """

    total_rois: dict
    block_shape: Coordinate
    write_rois: dict = field(default_factory=dict)
    scan_id: int = 0


_current = contextvars.ContextVar("daskgp_write_blocks", default=None)


def current_write_blocks() -> WriteBlocks | None:
    """The ``WriteBlocks`` of the tile a ``Scan`` downstream is planning now, or None."""
    return _current.get()


@contextlib.contextmanager
def writing_blocks(blocks: WriteBlocks):
    """Make ``blocks`` the ``current_write_blocks()`` while a tile is planned."""
    token = _current.set(blocks)
    try:
        yield blocks
    finally:
        _current.reset(token)
