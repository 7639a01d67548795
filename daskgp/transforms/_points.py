"""Points through spatial transforms: where a point goes when its image content is warped.

A warp samples output voxel ``x`` at source coordinate ``T(x)``; a source point ``y`` goes to
the ``x`` with ``T(x) = y``, found by Newton iterations on ``T`` (no full-grid search).
"""

from __future__ import annotations

import itertools

import numpy as np

from ._elastic import source_coordinates

__all__ = ["invert_points", "transform_sample", "warp_locations"]

_TOLERANCE = 1e-4  # voxels
_MAX_ITERATIONS = 30


def _corner_values(transform, base: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """``T`` at the corners of the cell at ``base``, ``(dims, 2, ..., 2)`` (float64)."""
    values = source_coordinates(transform, base, shape).astype(np.float64)
    shifts = getattr(transform, "section_shifts", None)
    if shifts is not None:
        # Whole-voxel section shifts are piecewise constant in the first axis: interpolate
        # without them, and add the shift of the point's own section afterwards.
        for z in range(shape[0]):
            values[(slice(None), z)] -= shifts[base[0] + z].reshape(
                (-1,) + (1,) * (len(shape) - 1))
    return _pad_cell(values)


def _pad_cell(values: np.ndarray) -> np.ndarray:
    """A cell of an axis of length 1 repeats its single sample (the field is constant)."""
    for axis in range(1, values.ndim):
        if values.shape[axis] == 1:
            values = np.concatenate([values, values], axis=axis)
    return values


def transform_sample(transform, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``T(x)`` and its Jacobian at one continuous grid position ``x`` (voxels), by
    multilinear interpolation of ``T`` at the voxel corners around ``x`` (exact for the
    affine part; for the spline within ~curvature/8 of a voxel, far below one voxel).

    Example:
        >>> from daskgp.transforms import ElasticTransform
        >>> t = ElasticTransform((4, 4), rotation=np.pi / 2)
        >>> value, jacobian = transform_sample(t, np.array([0.5, 1.0]))
        >>> value.round(6).tolist(), jacobian.round(6).tolist()
        ([1.0, 2.5], [[0.0, 1.0], [-1.0, 0.0]])
    """
    grid = transform.grid_shape
    dims = len(grid)
    base = tuple(int(min(max(np.floor(v), 0), max(n - 2, 0))) for v, n in zip(x, grid,
                                                                               strict=True))
    shape = tuple(2 if n > 1 else 1 for n in grid)
    corners = _corner_values(transform, base, shape)
    fraction = x - np.array(base, dtype=np.float64)
    value = np.zeros(dims)
    jacobian = np.zeros((dims, dims))
    for corner in itertools.product((0, 1), repeat=dims):
        weights = np.array([f if c else 1.0 - f for f, c in zip(fraction, corner,
                                                                strict=True)])
        corner_value = corners[(slice(None), *corner)]
        value += corner_value * np.prod(weights)
        for j in range(dims):
            if shape[j] == 1:
                continue
            others = np.prod(np.delete(weights, j))
            jacobian[:, j] += corner_value * (others if corner[j] else -others)
    for j in range(dims):
        if shape[j] == 1:  # an axis of one voxel: positions along it do not change
            jacobian[:, j] = 0.0
            jacobian[j, j] = 1.0
    shifts = getattr(transform, "section_shifts", None)
    if shifts is not None:
        section = int(min(max(np.floor(x[0] + 0.5), 0), grid[0] - 1))
        value = value + shifts[section]
    return value, jacobian


def invert_points(transform, targets: np.ndarray) -> np.ndarray:
    """For each source position ``y`` (rows of ``targets``, grid voxels), the output
    position ``x`` with ``T(x) = y``: Newton iterations from ``y``, to within 1e-4 voxels.
    Rows that do not converge (the transform folds there, or ``y`` is far off the grid) are
    NaN.

    Example:
        >>> from daskgp.transforms import ElasticTransform
        >>> t = ElasticTransform((5, 5), rotation=np.pi / 2, scale=2.0)
        >>> invert_points(t, np.array([[2.0, 2.0], [0.0, 4.0]])).round(6).tolist()
        [[2.0, 2.0], [1.0, 1.0]]
    """
    targets = np.asarray(targets, dtype=np.float64)
    result = np.full_like(targets, np.nan)
    for row, target in enumerate(targets):
        x = target.copy()
        for _ in range(_MAX_ITERATIONS):
            value, jacobian = transform_sample(transform, x)
            residual = value - target
            if np.abs(residual).max() < _TOLERANCE:
                result[row] = x
                break
            try:
                x = x - np.linalg.solve(jacobian, residual)
            except np.linalg.LinAlgError:
                break
            if not np.all(np.isfinite(x)):
                break
    return result


def warp_locations(transform, locations: np.ndarray, grid_begin, voxel_size) -> np.ndarray:
    """World locations ``(N, dims)`` of points after the warp ``transform`` of the voxel grid
    that starts at ``grid_begin`` (world units) with ``voxel_size``: a point goes where the
    content of its position goes. Voxel values sit at voxel centres, so a world position
    ``p`` is grid coordinate ``(p - grid_begin) / voxel_size - 0.5``. Only the last
    ``transform.dims`` axes change; rows that cannot be inverted are NaN.

    Example:
        >>> from daskgp.transforms import ElasticTransform
        >>> t = ElasticTransform((4, 4), rotation=np.pi)
        >>> warp_locations(t, np.array([[1.0, 3.0]]), (0, 0), (1, 1)).tolist()
        [[3.0, 1.0]]
    """
    dims = transform.dims
    begin = np.asarray(grid_begin, dtype=np.float64)
    step = np.asarray(voxel_size, dtype=np.float64)
    warped = np.array(locations, dtype=np.float64)
    if len(warped):
        grid = (warped[:, -dims:] - begin) / step - 0.5
        warped[:, -dims:] = begin + (invert_points(transform, grid) + 0.5) * step
    return warped
