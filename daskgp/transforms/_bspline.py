"""Cubic B-spline displacement fields from a coarse grid of control points, evaluated per axis.

The field is separable: per-axis tap weights contracted with the control-point coefficients,
one axis at a time, so a chunk's field costs O(chunk voxels), never O(volume).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def control_point_counts(grid_shape: Sequence[int], spacing: Sequence[float]) -> tuple[int, ...]:
    """Control points per axis for a grid of ``grid_shape`` voxels, as gunpowder's ``augment``.

    Example:
        >>> control_point_counts((84, 268, 268), (4, 40, 40))
        (21, 7, 7)
    """
    return tuple(
        max(1, round(float(s) / sp)) for s, sp in zip(grid_shape, spacing, strict=True)
    )


def spline_coefficients(values: np.ndarray) -> np.ndarray:
    """B-spline coefficients whose spline passes through ``values`` at the control points.

    ``values`` has shape ``(components, *control_points)``; each component is prefiltered
    with a mirror boundary, so evaluating the spline (``axis_taps`` + ``contract``) at the
    control points gives back ``values``, like ``scipy.ndimage.zoom(order=3)`` in gunpowder.

    Example:
        >>> spline_coefficients(np.array([[1.0, 5.0]]))
        array([[-3.,  9.]])
    """
    values = np.asarray(values, dtype=np.float64)
    coefficients = np.empty_like(values)
    for component in range(values.shape[0]):
        coefficients[component] = ndimage.spline_filter(
            values[component], order=3, mode="mirror", output=np.float64
        )
    return coefficients


def mirror_index(index: np.ndarray, count: int) -> np.ndarray:
    """Fold control-point indices outside ``[0, count)`` back by mirroring at the ends.

    Example:
        >>> mirror_index(np.array([-2, -1, 0, 2, 3, 4]), 3)
        array([2, 1, 0, 2, 1, 0])
    """
    index = np.asarray(index)
    if count == 1:
        return np.zeros_like(index)
    period = 2 * (count - 1)
    index = np.abs(index) % period
    return np.where(index >= count, period - index, index)


def _cubic_bspline(t: np.ndarray) -> np.ndarray:
    """The centred cubic B-spline kernel: non-negative, support (-2, 2), partition of unity."""
    t = np.abs(t)
    near = (4.0 - 6.0 * t * t + 3.0 * t * t * t) / 6.0
    far = (2.0 - t) ** 3 / 6.0
    return np.where(t < 1.0, near, np.where(t < 2.0, far, 0.0))


class AxisSampling:
    """Where the voxels of one grid axis fall between its control points.

    Args:
        length (int): voxels along the axis of the whole grid.
        control_points (int): control points along the axis; they sit at
            ``i * (length - 1) / (control_points - 1)``, the first and last on the grid ends.
        subsample (int): evaluate the spline on every ``subsample``-th voxel only (gunpowder's
            ``int(length / subsample)`` points spanning the grid) and interpolate linearly
            in between.

    Example:
        >>> sampling = AxisSampling(length=9, control_points=3)
        >>> index, weight = sampling.taps(np.array([0, 4]))
        >>> index.tolist()
        [[1, 0, 1, 2], [0, 1, 2, 1]]
    """

    def __init__(self, length: int, control_points: int, subsample: int = 1) -> None:
        self.length = int(length)
        self.control_points = int(control_points)
        self.subsample = int(subsample)
        self.samples = max(1, int(self.length / self.subsample)) if self.subsample > 1 else 0
        if self.samples > 1 and self.control_points > 1:
            ratio = (self.control_points - 1) / (self.samples - 1)
            self.width = math.ceil(ratio) + 5
        else:
            self.width = 4

    def _knot_position(self, numerator, denominator: int) -> np.ndarray:
        """Position in control-point units of ``numerator / denominator`` of the grid."""
        if self.control_points == 1 or denominator == 0:
            return np.zeros(np.shape(numerator))
        return np.asarray(numerator, dtype=np.float64) * (self.control_points - 1) / denominator

    def _raw_taps(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unmirrored tap indices and weights, ``(len(positions), width)`` each."""
        positions = np.asarray(positions, dtype=np.int64)
        offsets = np.arange(self.width)
        if self.samples <= 1:
            # One spline evaluation per voxel (samples == 1: gunpowder's constant field).
            if self.samples == 1:
                positions = np.zeros_like(positions)
            u = self._knot_position(positions, self.length - 1)
            start = np.floor(u).astype(np.int64) - 1
            index = start[:, None] + offsets
            return index, _cubic_bspline(u[:, None] - index)
        # Subsampled: linear interpolation between the spline at samples j and j + 1.
        v = positions.astype(np.float64) * (self.samples - 1) / (self.length - 1)
        j = np.minimum(np.floor(v).astype(np.int64), self.samples - 2)
        fraction = v - j
        u_low = self._knot_position(j, self.samples - 1)
        u_high = self._knot_position(j + 1, self.samples - 1)
        start = np.floor(u_low).astype(np.int64) - 1
        index = start[:, None] + offsets
        weight = (1.0 - fraction)[:, None] * _cubic_bspline(u_low[:, None] - index)
        weight = weight + fraction[:, None] * _cubic_bspline(u_high[:, None] - index)
        return index, weight

    def taps(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Control-point indices and non-negative weights (summing to 1) for each position.

        Each row depends on its position only, so any split of an axis into chunks evaluates
        every voxel with the very same arithmetic.
        """
        index, weight = self._raw_taps(positions)
        return mirror_index(index, self.control_points), weight

    def knot_span(self, first: int, last: int) -> tuple[float, float]:
        """Smallest and largest knot position (control-point units) that the values of the
        voxels ``first`` to ``last`` are interpolated from."""
        if self.samples == 1 or self.control_points == 1:
            return 0.0, 0.0
        if self.samples == 0:
            u = self._knot_position(np.array([first, last]), self.length - 1)
            return float(u[0]), float(u[1])
        v = np.array([first, last], dtype=np.float64) * (self.samples - 1) / (self.length - 1)
        j = np.minimum(np.floor(v).astype(np.int64), self.samples - 2)
        u = self._knot_position(np.array([j[0], j[1] + 1]), self.samples - 1)
        return float(u[0]), float(u[1])


class SplineHull:
    """Bounds of a cubic spline over boxes of knot positions, from subdivided coefficients.

    Spline values are convex combinations of the coefficients they depend on, so those bound
    them; but interpolating coefficients oscillate far beyond the spline (up to ~7x for
    jittered control points). Each subdivision halves the knot spacing and brings the
    coefficients closer to the spline; after two, bounds are within ~10% of the spline's range.

    Args:
        coefficients (numpy.ndarray): B-spline coefficients, one axis per grid axis.
        levels (int): subdivisions.

    Example:
        >>> values = np.array([0.0, 8.0, -8.0, 8.0, 0.0])
        >>> coefficients = spline_coefficients(values[None])[0]
        >>> round(float(coefficients.max()), 6)
        20.0
        >>> [round(b, 6) for b in SplineHull(coefficients).bounds([(0.0, 4.0)])]
        [-8.875, 8.75]
    """

    _PAD = 3

    def __init__(self, coefficients: np.ndarray, levels: int = 2) -> None:
        coefficients = np.asarray(coefficients, dtype=np.float64)
        self.counts = coefficients.shape
        self.levels = int(levels)
        padded = coefficients[np.ix_(*(
            mirror_index(np.arange(-self._PAD, n + self._PAD), n) for n in self.counts
        ))]
        offset = self._PAD
        for _ in range(self.levels):
            for axis in range(padded.ndim):
                padded = _subdivide(padded, axis)
            offset = 2 * offset - 2
        self.refined = padded
        self.offset = offset

    def bounds(self, spans: Sequence[tuple[float, float]]) -> tuple[float, float]:
        """(min, max) bounding the spline over the box of knot positions ``spans[d]``."""
        factor = 2**self.levels
        slices = []
        for (low, high), size in zip(spans, self.refined.shape, strict=True):
            # One extra coefficient each side guards against rounding in the knot positions.
            first = math.floor(low * factor) - 2 + self.offset
            last = math.floor(high * factor) + 3 + self.offset
            slices.append(slice(max(first, 0), min(last + 1, size)))
        block = self.refined[tuple(slices)]
        return float(block.min()), float(block.max())


def _subdivide(coefficients: np.ndarray, axis: int) -> np.ndarray:
    """Coefficients of the same cubic spline on knots twice as dense along ``axis``.

    The first and last coefficient have no neighbours to refine with and are dropped, so a
    coefficient array starting ``offset`` entries before knot 0 starts ``2 * offset - 2``
    entries before it afterwards. The compiled ``subdivide`` does the arithmetic of
    ``_subdivide_reference`` (same bits).

    Example:
        >>> _subdivide(np.array([0.0, 8.0, 0.0, 8.0, 0.0]), 0).tolist()
        [6.0, 4.0, 2.0, 4.0, 6.0]
    """
    from ._kernels import subdivide

    c = np.ascontiguousarray(coefficients, dtype=np.float64)
    shape = c.shape
    before, after = math.prod(shape[:axis]), math.prod(shape[axis + 1:])
    refined = np.empty((before, 2 * shape[axis] - 5, after))
    subdivide(c.reshape(before, shape[axis], after), refined)
    return refined.reshape(shape[:axis] + (2 * shape[axis] - 5,) + shape[axis + 1:])


def _subdivide_reference(coefficients: np.ndarray, axis: int) -> np.ndarray:
    """``_subdivide`` in numpy (the tests' reference)."""
    c = np.moveaxis(coefficients, axis, 0)
    refined = np.empty((2 * c.shape[0] - 5, *c.shape[1:]))
    refined[0::2] = (c[:-2] + 6.0 * c[1:-1] + c[2:]) / 8.0
    refined[1::2] = (c[1:-2] + c[2:-1]) / 2.0
    return np.moveaxis(refined, 0, axis)


def contract(
    coefficients: np.ndarray,
    taps: Sequence[tuple[np.ndarray, np.ndarray]],
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Evaluate a separable spline: contract each control axis with its taps.

    ``coefficients`` has one axis per grid axis; ``taps[d]`` is ``(index, weight)`` from
    ``AxisSampling.taps`` for the voxels wanted along axis ``d``. Axes are contracted last to
    first (the final, largest step copies whole slabs), in ``dtype``. Sums run tap by tap in a
    fixed order with elementwise numpy (no BLAS, no pairwise sums), so a voxel's value does
    not depend on which other voxels are evaluated with it.

    Example:
        >>> taps = AxisSampling(5, 3).taps(np.array([0, 2, 4]))
        >>> values = np.array([[1.0, 5.0, 2.0]])
        >>> contract(spline_coefficients(values)[0], [taps]).round(6).tolist()
        [1.0, 5.0, 2.0]
    """
    result = np.asarray(coefficients, dtype=dtype)
    for axis in reversed(range(len(taps))):
        index, weight = taps[axis]
        weight = weight.astype(dtype, copy=False)
        shape = [1] * result.ndim
        shape[axis] = len(index)
        total = None
        for t in range(index.shape[1]):
            term = np.take(result, index[:, t], axis=axis)
            term *= weight[:, t].reshape(shape)
            if total is None:
                total = term
            else:
                total += term
        result = total
    return result
