"""World-coordinate geometry: ``Coordinate`` and ``Roi``.

daskgp uses funlib.geometry, the field's standard shared with gunpowder and daisy, so users'
existing ``Roi``/``Coordinate`` objects work unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from funlib.geometry import Coordinate, Roi

__all__ = ["Coordinate", "Roi", "lcm_voxel_size", "roi_to_voxel_slices"]


def lcm_voxel_size(voxel_sizes: Iterable[Coordinate]) -> Coordinate | None:
    """Least common multiple of voxel sizes, per dimension.

    Example:
        >>> lcm_voxel_size([Coordinate(4, 2), Coordinate(2, 3)])
        (4, 6)
    """
    voxel_sizes = [Coordinate(v) for v in voxel_sizes if v is not None]
    if not voxel_sizes:
        return None
    dims = voxel_sizes[0].dims
    return Coordinate(math.lcm(*(v[d] for v in voxel_sizes)) for d in range(dims))


def roi_to_voxel_slices(roi: Roi, data_roi: Roi, voxel_size: Coordinate) -> tuple[slice, ...]:
    """Slices that select ``roi`` from an array covering ``data_roi`` at ``voxel_size``.

    Example:
        >>> roi_to_voxel_slices(Roi((4, 8), (8, 8)), Roi((0, 0), (16, 16)), Coordinate(4, 4))
        (slice(1, 3, None), slice(2, 4, None))
    """
    begin = (roi.begin - data_roi.begin) / voxel_size
    shape = roi.shape / voxel_size
    return tuple(slice(int(b), int(b + s)) for b, s in zip(begin, shape, strict=False))
