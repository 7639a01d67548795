"""``DeformTransform``: one deformation in world units (rotation, scale, B-spline jitter), shared
by arrays at any voxel size through its views on their voxel grids (``GridTransform``).

The views are ``ElasticTransform`` subclasses, so ``source_coordinates``, ``source_box`` and
``chunked_warp`` apply to them unchanged: per chunk, cost proportional to the chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._bspline import _cubic_bspline, contract, mirror_index
from ._elastic import _DTYPE, ElasticTransform


def plane_rotation(dims: int, axes: Sequence[int], angle: float) -> np.ndarray:
    """A ``dims`` x ``dims`` rotation by ``angle`` radians in the plane of ``axes = (a, b)``.

    gunpowder's (``augment``) convention: a source offset is the matrix times the output
    offset, ``(cos·da + sin·db, -sin·da + cos·db)`` in axes a, b.

    Example:
        >>> plane_rotation(3, (1, 2), np.pi / 2).round(6) + 0.0
        array([[ 1.,  0.,  0.],
               [ 0.,  0.,  1.],
               [ 0., -1.,  0.]])
    """
    a, b = (int(axis) for axis in axes)
    matrix = np.eye(dims)
    cos, sin = math.cos(angle), math.sin(angle)
    matrix[a, a], matrix[a, b], matrix[b, a], matrix[b, b] = cos, sin, -sin, cos
    return matrix


def quaternion_rotation(dims: int, axes: Sequence[int], quaternion: Sequence[float]) -> np.ndarray:
    """A ``dims`` x ``dims`` matrix rotating ``axes = (a, b, c)`` by a quaternion ``(w, x, y, z)``
    (normalized here; the other axes stay fixed).

    With the quaternion's components drawn from a standard normal distribution, the rotation
    is uniformly distributed over all 3D rotations (as ``scipy``'s ``Rotation.random``).

    Example:
        >>> half = np.sqrt(0.5)
        >>> quaternion_rotation(3, (0, 1, 2), (half, half, 0, 0)).round(6) + 0.0
        array([[ 1.,  0.,  0.],
               [ 0.,  0., -1.],
               [ 0.,  1.,  0.]])
    """
    axes = [int(axis) for axis in axes]
    if len(axes) != 3:
        raise ValueError(f"a 3D rotation needs 3 axes, got {axes}")
    w, x, y, z = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    rotation = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    matrix = np.eye(dims)
    matrix[np.ix_(axes, axes)] = rotation
    return matrix


def control_lattice(
    begin: Sequence[float], end: Sequence[float], spacing: Sequence[float]
) -> tuple[np.ndarray, tuple[int, ...]]:
    """World origin and count per axis of control points at multiples of ``spacing`` that
    cover ``[begin, end]`` with one more point beyond each end.

    Example:
        >>> origin, counts = control_lattice((3, 0), (17, 20), (10, 10))
        >>> origin.tolist(), counts
        ([-10.0, -10.0], (5, 5))
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    first = np.floor(np.asarray(begin, dtype=np.float64) / spacing) - 1
    last = np.ceil(np.asarray(end, dtype=np.float64) / spacing) + 1
    return first * spacing, tuple(int(n) for n in last - first + 1)


class KnotSampling:
    """Where the voxels of one axis of a voxel grid fall among world-placed control points.

    Voxel ``i`` sits at its centre, ``grid_begin + (i + 0.5) * voxel_size`` (world); control
    point ``k`` at ``control_origin + k * control_spacing``. Same interface as
    ``AxisSampling`` (``taps``, ``knot_span``), for ``ElasticTransform``'s spline code.

    Args:
        grid_begin (float): world position of the grid's first voxel's lower corner.
        voxel_size (float): world units per voxel.
        control_origin (float): world position of control point 0.
        control_spacing (float): world distance between control points.
        control_points (int): number of control points.
        subsample_origin (float, optional): with ``subsample_spacing``: evaluate the spline
            only at ``subsample_origin + j * subsample_spacing`` and interpolate linearly in
            between (gunpowder's ``subsample``, in world units).
        subsample_spacing (float, optional): see ``subsample_origin``.

    Example:
        >>> sampling = KnotSampling(-0.5, 1.0, -4.0, 4.0, 5)  # voxel 0 on control point 1
        >>> index, weight = sampling.taps(np.array([0]))
        >>> index.tolist(), (6 * weight).round(6).tolist()
        ([[0, 1, 2, 3]], [[1.0, 4.0, 1.0, 0.0]])
    """

    def __init__(
        self,
        grid_begin: float,
        voxel_size: float,
        control_origin: float,
        control_spacing: float,
        control_points: int,
        subsample_origin: float | None = None,
        subsample_spacing: float | None = None,
    ) -> None:
        self.grid_begin = float(grid_begin)
        self.voxel_size = float(voxel_size)
        self.control_origin = float(control_origin)
        self.control_spacing = float(control_spacing)
        self.control_points = int(control_points)
        self.subsample_spacing = None if subsample_spacing is None else float(subsample_spacing)
        self.subsample_origin = None if subsample_origin is None else float(subsample_origin)
        if self.subsample_spacing is None:
            self.width = 4
        else:
            self.width = math.ceil(self.subsample_spacing / self.control_spacing) + 5

    def _world(self, positions) -> np.ndarray:
        return self.grid_begin + (np.asarray(positions, dtype=np.float64) + 0.5) * self.voxel_size

    def _knot(self, world: np.ndarray) -> np.ndarray:
        return (world - self.control_origin) / self.control_spacing

    def _lattice(self, positions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Knot positions of the subsampling points below and above each voxel, and the
        voxel's fraction of the way from one to the other."""
        v = (self._world(positions) - self.subsample_origin) / self.subsample_spacing
        j = np.floor(v)
        low = self.subsample_origin + j * self.subsample_spacing
        return self._knot(low), self._knot(low + self.subsample_spacing), v - j

    def taps(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Control-point indices and non-negative weights (summing to 1) for voxel indices.

        Each row depends on its voxel only, so any chunking evaluates a voxel identically.
        """
        offsets = np.arange(self.width)
        if self.subsample_spacing is None:
            u = self._knot(self._world(positions))
            index = np.floor(u).astype(np.int64)[:, None] - 1 + offsets
            weight = _cubic_bspline(u[:, None] - index)
        else:
            u_low, u_high, fraction = self._lattice(positions)
            index = np.floor(u_low).astype(np.int64)[:, None] - 1 + offsets
            weight = (1.0 - fraction)[:, None] * _cubic_bspline(u_low[:, None] - index)
            weight = weight + fraction[:, None] * _cubic_bspline(u_high[:, None] - index)
        return mirror_index(index, self.control_points), weight

    def knot_span(self, first: int, last: int) -> tuple[float, float]:
        """Smallest and largest knot position that the values of voxels ``first`` to ``last``
        are interpolated from."""
        if self.subsample_spacing is None:
            u = self._knot(self._world([first, last]))
            return float(u[0]), float(u[1])
        u_low, u_high, _ = self._lattice([first, last])
        return float(u_low[0]), float(u_high[1])


class DeformTransform:
    """Maps a world point ``p`` (spatial axes) to the world point its value comes from::

        T(p) = center + matrix @ (p - center) + spline(p)

    ``matrix`` is typically a rotation divided by a scale; ``spline`` the cubic B-spline
    through displacements (world units) given at control points on a world lattice.
    ``on_grid`` gives the view of the transform on one array's voxel grid (what
    ``chunked_warp`` applies), ``world_displacement`` the field ``T(p) - p``.

    Args:
        center (sequence of float): world centre of rotation and scale.
        matrix (numpy.ndarray, optional): ``dims`` x ``dims``, invertible; identity if None.
        control_origin (sequence of float, optional): world position of control point 0.
        control_spacing (sequence of float, optional): world distance between control points.
        coefficients (numpy.ndarray, optional): ``(dims, *control_points)`` B-spline
            coefficients (``spline_coefficients``) of the displacement, world units; None for
            no elastic displacement.
        subsample_origin (sequence of float, optional): with ``subsample_spacing``, the spline
            is evaluated on the world lattice ``subsample_origin + j * subsample_spacing`` only
            and interpolated linearly in between.
        subsample_spacing (sequence of float, optional): see ``subsample_origin``.

    Example:
        >>> t = DeformTransform((2.0, 2.0), plane_rotation(2, (0, 1), np.pi))
        >>> world_displacement(t, (0, 0), (1, 1), (1, 4)).round(6).tolist()
        [[[3.0, 3.0, 3.0, 3.0]], [[3.0, 1.0, -1.0, -3.0]]]
    """

    def __init__(
        self,
        center: Sequence[float],
        matrix: np.ndarray | None = None,
        control_origin: Sequence[float] | None = None,
        control_spacing: Sequence[float] | None = None,
        coefficients: np.ndarray | None = None,
        subsample_origin: Sequence[float] | None = None,
        subsample_spacing: Sequence[float] | None = None,
    ) -> None:
        self.center = np.asarray(center, dtype=np.float64)
        dims = len(self.center)
        self.dims = dims
        self.matrix = np.eye(dims) if matrix is None else np.asarray(matrix, dtype=np.float64)
        if self.matrix.shape != (dims, dims) or abs(np.linalg.det(self.matrix)) < 1e-12:
            raise ValueError(f"matrix must be an invertible {dims}x{dims} matrix, "
                             f"got {self.matrix.tolist()}")
        if coefficients is not None:
            coefficients = np.asarray(coefficients, dtype=np.float64)
            if coefficients.ndim != dims + 1 or coefficients.shape[0] != dims:
                raise ValueError(f"coefficients must have shape (dims, *control_points) with "
                                 f"dims={dims}, got {coefficients.shape}")
            if control_origin is None or control_spacing is None:
                raise ValueError("coefficients need control_origin and control_spacing")
        if (subsample_origin is None) != (subsample_spacing is None):
            raise ValueError("give both subsample_origin and subsample_spacing, or neither")
        self.coefficients = coefficients

        def vector(value):
            return None if value is None else np.asarray(value, dtype=np.float64).reshape(dims)

        self.control_origin = vector(control_origin)
        self.control_spacing = vector(control_spacing)
        self.subsample_origin = vector(subsample_origin)
        self.subsample_spacing = vector(subsample_spacing)

    def on_grid(
        self, grid_begin: Sequence[float], voxel_size: Sequence[float], grid_shape: Sequence[int]
    ) -> GridTransform:
        """The view on the voxel grid of ``grid_shape`` voxels of ``voxel_size`` starting at
        ``grid_begin`` (world): voxel in, source voxel (of the same grid) out."""
        return GridTransform(self, grid_begin, voxel_size, grid_shape)

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("DeformTransform", tokenize(self.center, self.matrix, self.control_origin,
                                            self.control_spacing, self.coefficients,
                                            self.subsample_origin, self.subsample_spacing))

    def __repr__(self) -> str:
        control = None if self.coefficients is None else self.coefficients.shape[1:]
        return (f"DeformTransform(center={self.center.tolist()}, "
                f"matrix={self.matrix.round(4).tolist()}, control_points={control}, "
                f"subsample_spacing={self.subsample_spacing})")


def _centred(positions, grid_begin: np.ndarray, voxel_size: np.ndarray,
             center: np.ndarray) -> list[np.ndarray]:
    """World offsets from ``center`` of the voxel centres at ``positions`` (indices per axis),
    float64, one broadcastable array per axis."""
    dims = len(positions)
    centred = []
    for e, x in enumerate(positions):
        shape = [1] * dims
        shape[e] = len(x)
        world = grid_begin[e] + (np.asarray(x, dtype=np.float64) + 0.5) * voxel_size[e]
        centred.append((world - center[e]).reshape(shape))
    return centred


def _samplings(transform: DeformTransform, grid_begin: np.ndarray, voxel_size: np.ndarray):
    """One ``KnotSampling`` per axis of a voxel grid, or None without a spline."""
    if transform.coefficients is None:
        return None
    subsampled = transform.subsample_spacing is not None
    return [
        KnotSampling(
            grid_begin[d], voxel_size[d], transform.control_origin[d],
            transform.control_spacing[d], transform.coefficients.shape[1 + d],
            transform.subsample_origin[d] if subsampled else None,
            transform.subsample_spacing[d] if subsampled else None,
        )
        for d in range(transform.dims)
    ]


class GridTransform(ElasticTransform):
    """A ``DeformTransform`` seen on one array's voxel grid: output voxel index in, source
    coordinate (voxels of the same grid) out.

    Voxel ``i`` stands for its centre ``grid_begin + (i + 0.5) * voxel_size``, so arrays of
    different voxel sizes sample the very same world transform and stay aligned. Works with
    ``source_coordinates``, ``source_bounds``, ``source_box``, ``warp_block`` and
    ``chunked_warp`` (bit-identical for any chunking, bounds from box corners and control
    points).

    Args:
        transform (DeformTransform): the world transform.
        grid_begin (sequence of float): world position of the grid's first voxel's corner.
        voxel_size (sequence of float): world units per voxel.
        grid_shape (sequence of int): voxels per axis.

    Example:
        >>> from daskgp.transforms import source_coordinates
        >>> t = DeformTransform((4.0, 4.0), plane_rotation(2, (0, 1), np.pi / 2))
        >>> grid = t.on_grid((0, 0), (2, 2), (4, 4))
        >>> source_coordinates(grid, (0, 0), (1, 4)).round(6).tolist()
        [[[0.0, 1.0, 2.0, 3.0]], [[3.0, 3.0, 3.0, 3.0]]]
    """

    def __init__(
        self,
        transform: DeformTransform,
        grid_begin: Sequence[float],
        voxel_size: Sequence[float],
        grid_shape: Sequence[int],
    ) -> None:
        dims = transform.dims
        self.grid_shape = tuple(int(s) for s in grid_shape)
        if len(self.grid_shape) != dims or min(self.grid_shape) < 1:
            raise ValueError(f"grid_shape must be {dims} positive ints, got {grid_shape}")
        self.dims = dims
        self.transform = transform
        self.grid_begin = np.asarray(grid_begin, dtype=np.float64).reshape(dims)
        self.voxel_size = np.asarray(voxel_size, dtype=np.float64).reshape(dims)
        self.section_shifts = None
        # In source voxels: y_d = offset_d + sum_e matrix_de / voxel_size_d * (p_e - center_e).
        self._matrix = transform.matrix / self.voxel_size[:, None]
        self._offset = (transform.center - self.grid_begin) / self.voxel_size - 0.5
        coefficients = None
        if transform.coefficients is not None:
            coefficients = transform.coefficients / self.voxel_size.reshape(
                (dims,) + (1,) * dims)
        self._init_spline(coefficients, _samplings(transform, self.grid_begin, self.voxel_size))
        self._shifted = [False] * dims
        self._init_frame()

    def _affine_terms(self, positions: Sequence[np.ndarray]):
        """``(offset, matrix, u)``: the affine part is ``offset[d] + sum_e matrix[d, e] *
        u[e]`` (``ElasticTransform._affine``), ``u[e]`` the world offsets from the centre of
        the voxel centres at ``positions[e]``."""
        centred = _centred(positions, self.grid_begin, self.voxel_size, self.transform.center)
        u = [values.ravel() for values in centred]
        return self._offset - self.origin.astype(np.float64), self._matrix, u

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("GridTransform", tokenize(self.transform), self.grid_begin.tolist(),
                self.voxel_size.tolist(), self.grid_shape)

    def __repr__(self) -> str:
        return (f"GridTransform({self.transform!r}, grid_begin={self.grid_begin.tolist()}, "
                f"voxel_size={self.voxel_size.tolist()}, grid_shape={self.grid_shape})")


def world_displacement(
    transform: DeformTransform,
    grid_begin: Sequence[float],
    voxel_size: Sequence[float],
    shape: Sequence[int],
    begin: Sequence[int] | None = None,
) -> np.ndarray:
    """``T(p) - p`` (world units, float32, ``(dims, *shape)``) at the centres ``p`` of the
    voxels ``[begin, begin + shape)`` of a grid starting at ``grid_begin`` (world).

    Evaluated in float64 from the same spline taps as the warp; a chunk of the field costs
    proportional to the chunk.

    Example:
        >>> t = DeformTransform((0.0,), np.array([[0.5]]))
        >>> world_displacement(t, (0,), (2,), (3,)).tolist()
        [[-0.5, -1.5, -2.5]]
    """
    dims = transform.dims
    begin = (0,) * dims if begin is None else tuple(int(b) for b in begin)
    grid_begin = np.asarray(grid_begin, dtype=np.float64).reshape(dims)
    voxel_size = np.asarray(voxel_size, dtype=np.float64).reshape(dims)
    indices = [np.arange(b, b + s) for b, s in zip(begin, shape, strict=True)]
    centred = _centred(indices, grid_begin, voxel_size, transform.center)
    field = np.empty((dims, *(int(s) for s in shape)), dtype=_DTYPE)
    samplings = _samplings(transform, grid_begin, voxel_size)
    taps = None
    if samplings is not None:
        taps = [sampling.taps(x) for sampling, x in zip(samplings, indices, strict=True)]
    for d in range(dims):
        value = -centred[d]
        for e in range(dims):
            value = value + transform.matrix[d, e] * centred[e]
        if taps is not None:
            value = value + contract(transform.coefficients[d], taps, np.float64)
        field[d] = value
    return field
