"""Translated execution of a planned tile: read and write tasks shift their regions by the
tile's offset from the tile that was planned (``daskgp predict``'s plan once, run many).

The shift is a context variable set around a synchronous compute of the planned graph, so only
tasks that know their world geometry (``RegionView`` reads, ``write_blocks`` writes) move.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

from ..geometry import Coordinate

_shift: contextvars.ContextVar = contextvars.ContextVar("daskgp_tile_shift", default=None)


def current_shift() -> Coordinate | None:
    """The world shift of the tile being computed from another tile's plan, or None."""
    return _shift.get()


@contextlib.contextmanager
def translated(shift: Sequence[int] | None) -> Iterator[None]:
    """Run the block with ``current_shift()`` set to ``shift`` (world units)."""
    token = _shift.set(None if shift is None or not any(shift) else Coordinate(shift))
    try:
        yield
    finally:
        _shift.reset(token)


def voxel_shift(ndim: int, spatial_axes: Sequence[int], voxel_size: Sequence[int]) -> list[int]:
    """The current shift in voxels along each of ``ndim`` storage axes (zeros without one).

    ``spatial_axes`` are the storage axes of the spatial dimensions, in order. Raises
    ``ValueError`` for a shift that is not a whole number of voxels.

    Example:
        >>> with translated((8, 4)):
        ...     voxel_shift(3, (1, 2), (2, 1))
        [0, 4, 4]
    """
    shift = current_shift()
    offsets = [0] * ndim
    if shift is None:
        return offsets
    for axis, world, size in zip(spatial_axes, shift, voxel_size, strict=True):
        if world % size:
            raise ValueError(f"tile shift {shift} is not a multiple of the voxel size "
                             f"{tuple(voxel_size)}")
        offsets[axis] = int(world // size)
    return offsets
