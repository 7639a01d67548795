"""Small helpers that build test data: arrays that encode voxel position, sources over them."""

from __future__ import annotations

import numpy as np

import daskgp as gp


def position_data(shape, offset_voxels=(0, 0, 0), dtype=np.int64) -> np.ndarray:
    """An array whose value at each voxel encodes that voxel's global index, like gunpowder's
    tests: value = z * 10**8 + y * 10**4 + x (for global voxel indices z, y, x)."""
    grids = np.meshgrid(
        *(np.arange(o, o + s) for o, s in zip(offset_voxels, shape, strict=True)), indexing="ij"
    )
    weights = [10 ** (4 * (len(shape) - 1 - d)) for d in range(len(shape))]
    return sum(g.astype(np.int64) * w for g, w in zip(grids, weights, strict=True)).astype(dtype)


def array_source(key, data, voxel_size=(1, 1, 1), offset=(0, 0, 0), **spec_kwargs):
    """An ``ArraySource`` over ``data`` with the given voxel size and world offset."""
    voxel_size = gp.Coordinate(voxel_size)
    shape = gp.Coordinate(data.shape[data.ndim - voxel_size.dims:])
    spec = gp.ArraySpec(roi=gp.Roi(offset, shape * voxel_size), voxel_size=voxel_size,
                        **spec_kwargs)
    return gp.ArraySource(key, data, spec)
