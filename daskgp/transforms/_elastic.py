"""``ElasticTransform``: where each output voxel samples its source, and bounds on that region.

Pure functions of a few drawn parameters; evaluated for any sub-box of the grid at a cost
proportional to that box, with bounds computed from box corners and control points only.
"""

from __future__ import annotations

import collections
import hashlib
import math
import threading
from collections.abc import Sequence

import numpy as np

from ._bspline import AxisSampling, SplineHull, contract
from ._kernels import slab_coordinates, visit_tiles

# Coordinates are float32, as gunpowder's transformations: half the memory traffic of float64,
# and map_coordinates reads them faster. Their rounding (~1e-5 voxels) is far below what the
# interpolation resolves; the spline's (~1e-6 of its largest coefficient) gets a margin.
_DTYPE = np.float32
_SPLINE_BOUND_MARGIN = 1e-4
# Distance (voxels) kept between the frame origin and the smallest source coordinate.
_FRAME_MARGIN = 2


class ElasticTransform:
    """Maps output voxel ``x`` of a grid to source coordinate ``y`` (both in grid voxels)::

        y = c + scale * R(x - c) + spline(x) + shift(x[0])

    ``c`` is the grid centre ``(shape - 1) / 2``, ``R`` rotates the last two axes by
    ``rotation`` radians (``y' = cos·y + sin·x``, ``x' = -sin·y + cos·x`` on the centred
    offsets, gunpowder's ``augment.rotate``), ``spline`` is the cubic B-spline through the
    control points and ``shift`` adds whole-voxel section shifts (misalignment) per index of
    the first axis.

    Coordinates are evaluated in an internal frame whose origin lies below every source
    coordinate of the grid; there, moving coordinates by whole voxels (to the start of a
    chunk's source box) is exact in floating point, which keeps chunked warps bit-identical.

    Args:
        grid_shape (tuple of int): voxels per axis of the grid (the total requested ROI).
        coefficients (numpy.ndarray, optional): ``(dims, *control_points)`` B-spline
            coefficients of the displacement in voxels (see ``spline_coefficients``); None
            for no elastic displacement.
        rotation (float): angle in radians, in the last two axes.
        scale (float): positive; source offsets from the centre are ``scale`` times the
            output offsets (> 1 shows more of the source, content gets smaller).
        section_shifts (numpy.ndarray, optional): ``(grid_shape[0], dims)`` whole-voxel
            shifts added to the source coordinates of each section.
        subsample (int): evaluate the spline on every ``subsample``-th voxel and interpolate
            linearly in between (gunpowder's ``subsample``).

    Example:
        >>> t = ElasticTransform((3, 4, 4), rotation=np.pi / 2)
        >>> source_coordinates(t, (0, 0, 0), (1, 1, 1)).ravel().round(6).tolist()
        [0.0, 0.0, 3.0]
    """

    def __init__(
        self,
        grid_shape: Sequence[int],
        coefficients: np.ndarray | None = None,
        rotation: float = 0.0,
        scale: float = 1.0,
        section_shifts: np.ndarray | None = None,
        subsample: int = 1,
    ) -> None:
        self.grid_shape = tuple(int(s) for s in grid_shape)
        dims = len(self.grid_shape)
        if min(self.grid_shape, default=0) < 1:
            raise ValueError(f"grid_shape must be positive in every axis, got {grid_shape}")
        if not scale > 0:
            raise ValueError(f"scale must be positive, got {scale}")
        if coefficients is not None:
            coefficients = np.asarray(coefficients, dtype=np.float64)
            if coefficients.ndim != dims + 1 or coefficients.shape[0] != dims:
                raise ValueError(
                    f"coefficients must have shape (dims, *control_points) with dims={dims}, "
                    f"got {coefficients.shape}"
                )
        if section_shifts is not None:
            section_shifts = np.asarray(section_shifts, dtype=np.int64)
            if section_shifts.shape != (self.grid_shape[0], dims):
                raise ValueError(
                    f"section_shifts must have shape {(self.grid_shape[0], dims)}, "
                    f"got {section_shifts.shape}"
                )
        self.dims = dims
        self.rotation = float(rotation) if dims >= 2 else 0.0
        self.scale = float(scale)
        self.section_shifts = section_shifts
        self.subsample = int(subsample)
        self.center = np.array([(s - 1) / 2 for s in self.grid_shape], dtype=np.float64)
        self._cos = math.cos(self.rotation)
        self._sin = math.sin(self.rotation)
        samplings = None
        if coefficients is not None:
            samplings = [
                AxisSampling(length, count, self.subsample)
                for length, count in zip(self.grid_shape, coefficients.shape[1:], strict=True)
            ]
        self._init_spline(coefficients, samplings)
        self._shifted = [
            section_shifts is not None and bool(np.any(section_shifts[:, d]))
            for d in range(dims)
        ]
        self._init_frame()

    def _init_spline(self, coefficients: np.ndarray | None, samplings) -> None:
        """Set the spline part: ``(dims, *control_points)`` coefficients (or None) and one
        sampling per grid axis, with ``taps(positions)`` and ``knot_span(first, last)`` for
        voxel indices (``AxisSampling``, or a subclass's own)."""
        self.coefficients = coefficients
        if coefficients is None:
            self._samplings = None
            self._active = [False] * self.dims
        else:
            self._samplings = samplings
            self._active = [bool(np.any(coefficients[d])) for d in range(self.dims)]
            self._coefficients32 = coefficients.astype(_DTYPE)
            self._magnitude = [float(np.abs(coefficients[d]).max()) for d in range(self.dims)]
            self._hulls = {}

    def _init_frame(self) -> None:
        """Place the frame origin below every source coordinate of the grid (needs the spline,
        section shifts and ``_affine`` set up)."""
        self.origin = np.zeros(self.dims, dtype=np.int64)
        low, _ = self._frame_bounds((0,) * self.dims, self.grid_shape)
        self.origin = np.floor(low).astype(np.int64) - _FRAME_MARGIN

    def _affine_terms(self, positions: Sequence[np.ndarray]):
        """``(offset, matrix, u)`` with the affine part ``offset[d] + sum_e matrix[d, e] *
        u[e]`` in the frame: ``u[e]`` (float64, 1D) the offsets of ``positions[e]`` from the
        centre, ``matrix`` scale times the rotation of the last two axes."""
        dims = self.dims
        matrix = self.scale * np.eye(dims)
        if self.rotation != 0.0:
            a, b = dims - 2, dims - 1
            matrix[a, a], matrix[a, b] = self.scale * self._cos, self.scale * self._sin
            matrix[b, a], matrix[b, b] = -self.scale * self._sin, self.scale * self._cos
        u = [np.asarray(x, dtype=np.float64) - self.center[e] for e, x in enumerate(positions)]
        return self.center - self.origin, matrix, u

    def _affine(self, positions: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The affine part in the frame, per axis, as broadcastable float32 arrays:
        ``offset[d] + matrix[d, 0] * u[0] + matrix[d, 1] * u[1] + ...`` summed in that order
        in float64 and rounded once (``_affine_terms``; the kernel's arithmetic too).

        Every term is monotone in one position and rounding is monotone, so the result is
        monotone in each position and its extremes over a box are attained at its corners.
        """
        offset, matrix, u = self._affine_terms(positions)
        grids = []
        for e, values in enumerate(u):
            shape = [1] * self.dims
            shape[e] = len(values)
            grids.append(values.reshape(shape))
        result = []
        for d in range(self.dims):
            total = offset[d]
            for e in range(self.dims):
                total = total + matrix[d, e] * grids[e]
            result.append(np.asarray(total).astype(_DTYPE))
        return result

    def _frame_coordinates(self, begin: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """Source coordinates (frame) of the voxels in the box, ``(dims, *shape)``."""
        if self.dims <= 3:
            return CoordinateSlabs(self, begin, shape).evaluate(0, shape[0])
        positions = [np.arange(b, b + s) for b, s in zip(begin, shape, strict=True)]
        return self._frame_coordinates_at(positions)

    def _frame_coordinates_at(self, positions: Sequence[np.ndarray]) -> np.ndarray:
        """Source coordinates (frame) of the grid of voxels ``positions[d]`` per axis (each
        voxel's value does not depend on the others evaluated with it)."""
        shape = tuple(len(x) for x in positions)
        affine = self._affine(positions)
        coordinates = np.empty((self.dims, *shape), dtype=_DTYPE)
        taps = None
        if any(self._active):
            taps = [sampling.taps(x) for sampling, x in zip(self._samplings, positions,
                                                            strict=True)]
        for d in range(self.dims):
            if self._active[d]:
                spline = contract(self._coefficients32[d], taps, _DTYPE)
                np.add(affine[d], spline, out=coordinates[d])
            else:
                coordinates[d] = affine[d]
            if self._shifted[d]:
                shift = self.section_shifts[positions[0], d].astype(_DTYPE)
                coordinates[d] += shift.reshape((-1,) + (1,) * (self.dims - 1))
        return coordinates

    def _frame_bounds(self, begin: Sequence[int], shape: Sequence[int]):
        """Lower and upper bounds (frame) of ``_frame_coordinates`` over the box.

        The affine part is evaluated at the box corners with the same arithmetic; the spline
        lies within the range of its subdivided coefficients over the box (``SplineHull``),
        widened by a margin for rounding; section shifts within those of the box's sections.
        Additions happen in the same order as in ``_frame_coordinates``, so rounding cannot
        escape the bounds.
        """
        ends = [np.array([b, b + s - 1]) for b, s in zip(begin, shape, strict=True)]
        affine = self._affine(ends)
        low = [np.broadcast_to(affine[d], (2,) * self.dims).min() for d in range(self.dims)]
        high = [np.broadcast_to(affine[d], (2,) * self.dims).max() for d in range(self.dims)]
        for d, (spline_low, spline_high) in self._spline_bounds(begin, shape).items():
            low[d] = low[d] + spline_low
            high[d] = high[d] + spline_high
        for d in range(self.dims):
            if self._shifted[d]:
                sections = self.section_shifts[begin[0]:begin[0] + shape[0], d]
                low[d] = low[d] + _DTYPE(sections.min())
                high[d] = high[d] + _DTYPE(sections.max())
        return np.array(low, dtype=np.float64), np.array(high, dtype=np.float64)

    def _spline_bounds(self, begin: Sequence[int], shape: Sequence[int]) -> dict:
        """Per axis with a spline: float32 ``(low, high)`` bounding its values over the box
        (``SplineHull``), widened by a margin for rounding."""
        if not any(self._active):
            return {}
        spans = [
            sampling.knot_span(b, b + s - 1)
            for sampling, b, s in zip(self._samplings, begin, shape, strict=True)
        ]
        bounds = {}
        for d in range(self.dims):
            if self._active[d]:
                if d not in self._hulls:
                    self._hulls[d] = _spline_hull(self.coefficients[d])
                spline_low, spline_high = self._hulls[d].bounds(spans)
                margin = _SPLINE_BOUND_MARGIN * self._magnitude[d]
                bounds[d] = (_round_down(spline_low - margin), _round_up(spline_high + margin))
        return bounds

    def __getstate__(self) -> dict:
        # Tasks only evaluate coordinates; the (larger) bound helpers are rebuilt on demand.
        state = dict(self.__dict__)
        if "_hulls" in state:
            state["_hulls"] = {}
        state.pop("_tight_boxes", None)
        return state

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return (
            "ElasticTransform", self.grid_shape, tokenize(self.coefficients), self.rotation,
            self.scale, tokenize(self.section_shifts), self.subsample,
        )

    def __repr__(self) -> str:
        control = None if self.coefficients is None else self.coefficients.shape[1:]
        return (
            f"ElasticTransform(grid_shape={self.grid_shape}, control_points={control}, "
            f"rotation={self.rotation:.4f}, scale={self.scale:.4f}, "
            f"misaligned={self.section_shifts is not None}, subsample={self.subsample})"
        )


class CoordinateSlabs:
    """Source coordinates of a box of output voxels, evaluated a slab (of sections, the first
    axis) at a time by the compiled kernel, for transforms of at most 3 axes.

    The per-axis parts (offsets from the centre, spline taps, section shifts) are prepared once
    for the box; each slab then costs only its own voxels, so a warp never needs the box's
    whole ``(dims, *shape)`` coordinate array. A voxel's coordinates are the same bits whatever
    box or slab it is evaluated in (the arithmetic is per voxel, in a fixed order).

    Args:
        transform (ElasticTransform): the transform (or a ``GridTransform``).
        begin (tuple of int): first voxel of the box (grid voxels).
        shape (tuple of int): voxels of the box per axis.
        relative_to (tuple of int, optional): grid voxel the coordinates are relative to
            (default: the frame origin, ``transform.origin``).

    Example:
        >>> slabs = CoordinateSlabs(ElasticTransform((4, 2, 3)), (0, 0, 0), (4, 2, 3),
        ...                         (0, 0, 0))
        >>> slabs.evaluate(1, 1)[:, 0].tolist()
        [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]],
         [[0.0, 1.0, 2.0], [0.0, 1.0, 2.0]]]
    """

    def __init__(self, transform: ElasticTransform, begin: Sequence[int],
                 shape: Sequence[int], relative_to: Sequence[int] | None = None) -> None:
        dims = transform.dims
        if dims > 3:
            raise ValueError(f"CoordinateSlabs handles at most 3 axes, got {dims}")
        pad = 3 - dims
        self.dims = dims
        self.shape = tuple(int(s) for s in shape)
        positions = [np.arange(b, b + s) for b, s in zip(begin, shape, strict=True)]
        offset, matrix, u = transform._affine_terms(positions)
        self._offset = np.concatenate([np.zeros(pad), offset])
        self._matrix = np.zeros((3, 3))
        self._matrix[pad:, pad:] = matrix
        self._u = [np.zeros(1)] * pad + [np.ascontiguousarray(v) for v in u]
        self._active = np.array([False] * pad + list(transform._active))
        if any(transform._active):
            coefficients = transform._coefficients32
            self._coefficients = np.ascontiguousarray(
                np.zeros((3,) + (1,) * pad + coefficients.shape[1:], dtype=_DTYPE))
            self._coefficients[pad:] = coefficients.reshape(
                (dims,) + (1,) * pad + coefficients.shape[1:])
            taps = [sampling.taps(x) for sampling, x in zip(transform._samplings, positions,
                                                            strict=True)]
            unit = (np.zeros((1, 1), np.int64), np.ones((1, 1), _DTYPE))
            self._taps = [unit] * pad + [
                (np.ascontiguousarray(index, dtype=np.int64),
                 np.ascontiguousarray(weight, dtype=_DTYPE)) for index, weight in taps
            ]
        else:
            self._coefficients = np.zeros((3, 1, 1, 1), dtype=_DTYPE)
            self._taps = [(np.zeros((len(x), 1), np.int64), np.zeros((len(x), 1), _DTYPE))
                          for x in self._u]
        self._shifted = np.array([False] * pad + list(transform._shifted))
        self._shifts = np.zeros((len(self._u[0]), 3), dtype=_DTYPE)
        if transform.section_shifts is not None:
            self._shifts[:, pad:] = transform.section_shifts[positions[0]].astype(_DTYPE)
        relative = np.zeros(dims, np.int64)
        if relative_to is not None:
            relative = np.asarray(relative_to, dtype=np.int64) - transform.origin
        self._relative = np.concatenate([np.zeros(pad, np.int64), relative]).astype(_DTYPE)
        self._pad = pad

    @property
    def planar(self) -> bool:
        """Whether the first axis' coordinate depends on the section alone (no spline, shift
        or rotation in it): each output section then samples one source section."""
        first = self._pad
        return self.dims == 3 and not self._active[first] and not self._shifted[first] and (
            self._matrix[first, first + 1] == 0 and self._matrix[first, first + 2] == 0)

    def evaluate(self, first: int, count: int, out: np.ndarray | None = None) -> np.ndarray:
        """Coordinates ``(dims, count, *shape[1:])`` of the sections ``first`` to
        ``first + count - 1`` of the box (into ``out`` if given, of that shape); boxes of
        fewer than 3 axes are evaluated whole."""
        if out is None:
            out = np.empty((self.dims, count) + self.shape[1:], dtype=_DTYPE)
        if self._pad:
            if (first, count) != (0, self.shape[0]):
                raise ValueError(f"a {self.dims}-axis box is evaluated whole, not in slabs")
            sections = slice(0, 1)
        else:
            sections = slice(first, first + count)
        index0, weight0 = self._taps[0]
        slab_coordinates(self._offset, self._matrix, self._u[0][sections], self._u[1],
                         self._u[2], self._active, self._coefficients, index0[sections],
                         weight0[sections], *self._taps[1], *self._taps[2], self._shifted,
                         self._shifts[sections], self._relative, np.array([self._pad, 3]),
                         out.reshape((self.dims,) + (1,) * self._pad + out.shape[1:]))
        return out

    def evaluate_tile(self, begin: Sequence[int], shape: Sequence[int]) -> np.ndarray:
        """Coordinates ``(3, *shape)`` of the sub-box ``[begin, begin + shape)`` (relative to
        the box's first voxel) of a 3-axis box: the same bits as ``evaluate`` gives there."""
        if self._pad:
            raise ValueError(f"a {self.dims}-axis box is evaluated whole, not in tiles")
        cut = [slice(b, b + s) for b, s in zip(begin, shape, strict=True)]
        out = np.empty((3, *shape), dtype=_DTYPE)
        (index0, weight0), (index1, weight1), (index2, weight2) = self._taps
        slab_coordinates(self._offset, self._matrix, self._u[0][cut[0]], self._u[1][cut[1]],
                         self._u[2][cut[2]], self._active, self._coefficients,
                         index0[cut[0]], weight0[cut[0]], index1[cut[1]], weight1[cut[1]],
                         index2[cut[2]], weight2[cut[2]], self._shifted, self._shifts[cut[0]],
                         self._relative, np.array([0, 3]), out)
        return out

    def visit_tiles(self, begins, ends, tile_low, tile_high, order, low, high, done) -> None:
        """The compiled ``visit_tiles`` of the tiles ``order`` of a 3-axis box (``begins``,
        ``ends``: ``(tiles, 3)`` voxels relative to the box's first), updating ``low``,
        ``high`` and ``done``."""
        if self._pad:
            raise ValueError(f"a {self.dims}-axis box is evaluated whole, not in tiles")
        (index0, weight0), (index1, weight1), (index2, weight2) = self._taps
        visit_tiles(self._offset, self._matrix, self._u[0], self._u[1], self._u[2],
                    self._active, self._coefficients, index0, weight0, index1, weight1,
                    index2, weight2, self._shifted, self._shifts, self._relative, begins, ends,
                    tile_low, tile_high, order, low, high, done)

    def planar_slab(self, first: int, out: np.ndarray) -> None:
        """For a ``planar`` box: the coordinates in the last two axes of the sections
        ``first`` to ``first + len(out[0]) - 1`` into ``out`` (``(2, count, *shape[1:])``);
        their first-axis coordinates are ``sections()``."""
        sections = slice(first, first + out.shape[1])
        index0, weight0 = self._taps[0]
        slab_coordinates(self._offset, self._matrix, self._u[0][sections], self._u[1],
                         self._u[2], self._active, self._coefficients, index0[sections],
                         weight0[sections], *self._taps[1], *self._taps[2], self._shifted,
                         self._shifts[sections], self._relative, np.array([1, 3]), out)

    def sections(self) -> np.ndarray:
        """For a ``planar`` box: each section's first-axis coordinate (the same at all of its
        voxels), evaluated at the section's first voxel."""
        (index1, weight1), (index2, weight2) = self._taps[1], self._taps[2]
        values = np.empty((1, self.shape[0], 1, 1), dtype=_DTYPE)
        slab_coordinates(self._offset, self._matrix, self._u[0], self._u[1][:1],
                         self._u[2][:1], self._active, self._coefficients, *self._taps[0],
                         index1[:1], weight1[:1], index2[:1], weight2[:1], self._shifted,
                         self._shifts, self._relative, np.array([0, 1]), values)
        return values.ravel()


_HULLS: collections.OrderedDict = collections.OrderedDict()
_HULLS_LOCK = threading.Lock()
_HULLS_KEPT = 32


def _spline_hull(coefficients: np.ndarray) -> SplineHull:
    """The ``SplineHull`` of ``coefficients``, shared by the transforms with equal ones (the
    arrays of a DeformAugment at one voxel size): subdividing is most of planning's cost."""
    key = (coefficients.shape, hashlib.blake2b(np.ascontiguousarray(coefficients).data,
                                               digest_size=16).digest())
    with _HULLS_LOCK:
        hull = _HULLS.get(key)
        if hull is not None:
            _HULLS.move_to_end(key)
            return hull
    hull = SplineHull(coefficients)
    with _HULLS_LOCK:
        _HULLS[key] = hull
        while len(_HULLS) > _HULLS_KEPT:
            _HULLS.popitem(last=False)
    return hull


def _round_down(value: float) -> np.floating:
    """The largest float32 not above ``value``."""
    rounded = _DTYPE(value)
    return np.nextafter(rounded, _DTYPE(-np.inf)) if rounded > value else rounded


def _round_up(value: float) -> np.floating:
    """The smallest float32 not below ``value``."""
    rounded = _DTYPE(value)
    return np.nextafter(rounded, _DTYPE(np.inf)) if rounded < value else rounded


def _check_box(transform: ElasticTransform, begin: Sequence[int], shape: Sequence[int]) -> None:
    if len(begin) != transform.dims or len(shape) != transform.dims:
        raise ValueError(
            f"a box of {transform.dims}-d begin and shape is needed, got {begin} and {shape}"
        )
    for b, s, n in zip(begin, shape, transform.grid_shape, strict=True):
        if s < 1 or b < 0 or b + s > n:
            raise ValueError(
                f"box begin={tuple(begin)} shape={tuple(shape)} is empty or outside the "
                f"transform's grid of shape {transform.grid_shape}"
            )


def source_coordinates(
    transform: ElasticTransform,
    begin: Sequence[int],
    shape: Sequence[int],
    relative_to: Sequence[int] | None = None,
) -> np.ndarray:
    """Source coordinates of the output voxels in a box of the grid, ``(dims, *shape)``.

    Coordinates are float32 (as gunpowder's), in grid voxels, relative to ``relative_to``
    (default: the grid's first voxel). Relative to a box from ``source_box`` the result is
    exact: it is the same for a voxel whatever box it is evaluated in, up to the whole-voxel
    difference of the origins.

    Example:
        >>> t = ElasticTransform((4, 4))
        >>> source_coordinates(t, (1, 2), (1, 2)).tolist()
        [[[1.0, 1.0]], [[2.0, 3.0]]]
    """
    _check_box(transform, begin, shape)
    relative_to = np.zeros(transform.dims, np.int64) if relative_to is None else relative_to
    if transform.dims <= 3:
        return CoordinateSlabs(transform, begin, shape, relative_to).evaluate(0, shape[0])
    coordinates = transform._frame_coordinates(begin, shape)
    shift = np.asarray(relative_to, dtype=np.int64) - transform.origin
    for d in range(transform.dims):
        coordinates[d] -= _DTYPE(shift[d])
    return coordinates


def source_bounds(
    transform: ElasticTransform, begin: Sequence[int], shape: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper bounds, in grid voxels, of the source coordinates of a box.

    Computed from the box corners and the control points it depends on: cost independent of
    the box size.

    Example:
        >>> t = ElasticTransform((5, 5), rotation=np.pi / 4)
        >>> [v.round(3).tolist() for v in source_bounds(t, (0, 0), (5, 5))]
        [[-0.828, -0.828], [4.828, 4.828]]
    """
    _check_box(transform, begin, shape)
    low, high = transform._frame_bounds(begin, shape)
    return low + transform.origin, high + transform.origin


def source_box(
    transform: ElasticTransform, begin: Sequence[int], shape: Sequence[int]
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The voxel box ``[begin, end)`` of the source that a box of output voxels reads.

    Holds every voxel that linear (order 1) or nearest (order 0) interpolation touches:
    ``floor(low)`` to ``ceil(high)``, so every coordinate lies within ``[0, size - 1]`` of the
    box, as ``scipy.ndimage.map_coordinates`` with ``mode="constant"`` requires (it returns
    ``cval`` beyond, for any order). Boxes of sub-boxes lie inside the box of the box.

    Example:
        >>> source_box(ElasticTransform((5, 5), rotation=np.pi / 4), (0, 0), (5, 5))
        ((-1, -1), (6, 6))
    """
    _check_box(transform, begin, shape)
    return _box_from_frame_bounds(transform, *transform._frame_bounds(begin, shape))


# Boxes of at most this many voxels are evaluated rather than bounded; a tight box evaluates
# at most ``_TIGHT_BUDGET`` voxels in all (then falls back to the bounds, still safe).
_LEAF_VOXELS = 4096
_TIGHT_BUDGET = 2_000_000


def _constant_shift_boxes(transform: ElasticTransform, begin, shape) -> list:
    """The box split along the first axis into runs of sections with equal shifts."""
    if transform.section_shifts is None:
        return [(tuple(begin), tuple(shape))]
    shifts = transform.section_shifts[begin[0]:begin[0] + shape[0]]
    boxes, first = [], 0
    for last in range(1, len(shifts) + 1):
        if last < len(shifts) and np.array_equal(shifts[last], shifts[first]):
            continue
        boxes.append(((begin[0] + first, *begin[1:]), (last - first, *shape[1:])))
        first = last
    return boxes


def _sample(transform: ElasticTransform, begin, shape, low, high) -> None:
    """Lower ``low``/raise ``high`` (in place) to the coordinates of the box's corners,
    edge middles and centre: values the box certainly attains."""
    positions = [np.unique([b, b + (s - 1) // 2, b + s - 1]) for b, s in
                 zip(begin, shape, strict=True)]
    values = transform._frame_coordinates_at(positions).reshape(transform.dims, -1)
    np.minimum(low, values.min(axis=1), out=low)
    np.maximum(high, values.max(axis=1), out=high)


def _can_widen(box_low, box_high, low, high) -> bool:
    return bool(np.any(np.floor(box_low) < np.floor(low))
                or np.any(np.ceil(box_high) > np.ceil(high)))


def _tight_frame_bounds(transform: ElasticTransform, begin, shape, budget: int):
    """Lower and upper values (frame) whose floor and ceil are those of the exact extremes
    of ``_frame_coordinates`` over the box (branch and bound: sub-boxes whose bounds could
    still move the floor or ceil are split, small ones evaluated). Section shifts count
    exactly: each run of equally shifted sections is bounded on its own."""
    dims = transform.dims
    low = np.full(dims, np.inf)
    high = np.full(dims, -np.inf)
    leftover_low, leftover_high = low.copy(), high.copy()
    pending = []
    for box_begin, box_shape in _constant_shift_boxes(transform, begin, shape):
        _sample(transform, box_begin, box_shape, low, high)
        pending.append((box_begin, box_shape, *transform._frame_bounds(box_begin, box_shape)))
    evaluated = 0
    while pending:
        box_begin, box_shape, box_low, box_high = pending.pop()
        if not _can_widen(box_low, box_high, low, high):
            continue  # cannot move the integer box
        _sample(transform, box_begin, box_shape, low, high)
        if not _can_widen(box_low, box_high, low, high):
            continue
        voxels = math.prod(box_shape)
        if voxels <= _LEAF_VOXELS:
            if evaluated + voxels > budget:
                np.minimum(leftover_low, box_low, out=leftover_low)
                np.maximum(leftover_high, box_high, out=leftover_high)
                continue
            values = transform._frame_coordinates(box_begin, box_shape).reshape(dims, -1)
            np.minimum(low, values.min(axis=1), out=low)
            np.maximum(high, values.max(axis=1), out=high)
            evaluated += voxels
            continue
        axis = int(np.argmax(box_shape))
        half = box_shape[axis] // 2
        for part_begin, part_size in ((box_begin[axis], half),
                                      (box_begin[axis] + half, box_shape[axis] - half)):
            part_begin = (*box_begin[:axis], part_begin, *box_begin[axis + 1:])
            part_shape = (*box_shape[:axis], part_size, *box_shape[axis + 1:])
            pending.append((part_begin, part_shape,
                            *transform._frame_bounds(part_begin, part_shape)))
    return np.minimum(low, leftover_low), np.maximum(high, leftover_high)


def _box_from_frame_bounds(transform: ElasticTransform, low, high):
    origin = [int(o) for o in transform.origin]
    box_begin = tuple(math.floor(v) + o for v, o in zip(low, origin, strict=True))
    box_end = tuple(math.ceil(v) + 1 + o for v, o in zip(high, origin, strict=True))
    return box_begin, box_end


def tight_source_box(
    transform: ElasticTransform, begin: Sequence[int], shape: Sequence[int],
    budget: int = _TIGHT_BUDGET,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The smallest voxel box that a box of output voxels reads: ``source_box`` made exact.

    ``floor`` of the smallest and ``ceil`` of the largest source coordinate, as gunpowder
    takes them from its whole transformation. For up to 3 axes every voxel's coordinates are
    evaluated by the compiled kernel the warp itself uses (``CoordinateSlabs``, a slab of
    sections at a time, never the whole coordinate array), so the box holds exactly the
    coordinates the warp samples; misalignment counts per section. Beyond 3 axes, branch and
    bound on the bounds of ``source_box`` (sub-boxes that could still widen the box are split,
    boxes of up to 4096 voxels evaluated; after ``budget`` evaluated voxels the remaining
    bounds are used: never smaller than the exact box, never larger than ``source_box``).

    Example:
        >>> t = ElasticTransform((5, 5), rotation=np.pi / 4)
        >>> tight_source_box(t, (0, 0), (5, 5))
        ((-1, -1), (6, 6))
    """
    _check_box(transform, begin, shape)
    key = (tuple(int(b) for b in begin), tuple(int(s) for s in shape), int(budget))
    # Planning (prepare) and building (the warp's check) ask for the same boxes: keep them.
    boxes = transform.__dict__.setdefault("_tight_boxes", {})
    if key not in boxes:
        if transform.dims <= 3:
            low, high = _evaluated_frame_bounds(transform, key[0], key[1])
        else:
            low, high = _tight_frame_bounds(transform, *key)
        boxes[key] = _box_from_frame_bounds(transform, low, high)
    return boxes[key]


# Sections evaluated at once by ``_evaluated_frame_bounds``: about this many voxels.
_SLAB_VOXELS = 1 << 17


# Tiles (sections, rows, columns) that ``_evaluated_frame_bounds`` bounds and evaluates.
_TILE = (16, 16, 16)
# Smaller boxes are evaluated whole: cheaper than bounding their tiles.
_TILED_VOXELS = 1 << 18


def _tile_bounds(transform: ElasticTransform, begin, shape, starts):
    """Lower and upper bounds (frame) of the coordinates in each tile of a 3-axis box,
    ``(3, *tiles)`` each; tile ``(a, b, c)`` starts at ``starts[d][a, b or c]`` (relative to
    ``begin``) and ends before the next start (or the box's end).

    ``_frame_bounds``'s arithmetic, with the affine part at every tile's corners (where a
    monotone function has its extremes) and the spline's hull over the whole box, so a
    bound never excludes a value the kernel computes; exact for axes without spline."""
    firsts = [begin[d] + starts[d] for d in range(3)]
    lasts = [begin[d] + np.append(starts[d][1:], shape[d]) - 1 for d in range(3)]
    affine = transform._affine([np.concatenate([f, e]) for f, e in zip(firsts, lasts,
                                                                       strict=True)])
    counts = [len(s) for s in starts]
    spline = transform._spline_bounds(begin, shape)
    corners_low, corners_high = [], []
    for d in range(3):
        corners = np.broadcast_to(affine[d], tuple(2 * n for n in counts)).reshape(
            2, counts[0], 2, counts[1], 2, counts[2])
        low, high = corners.min(axis=(0, 2, 4)), corners.max(axis=(0, 2, 4))
        if d in spline:
            low, high = low + spline[d][0], high + spline[d][1]
        if transform._shifted[d]:
            shifts = transform.section_shifts[:, d]
            run_low = np.array([shifts[f:e + 1].min() for f, e in zip(firsts[0], lasts[0],
                                                                      strict=True)])
            run_high = np.array([shifts[f:e + 1].max() for f, e in zip(firsts[0], lasts[0],
                                                                       strict=True)])
            low = low + run_low.astype(_DTYPE)[:, None, None]
            high = high + run_high.astype(_DTYPE)[:, None, None]
        corners_low.append(low)
        corners_high.append(high)
    return np.array(corners_low, dtype=np.float64), np.array(corners_high, dtype=np.float64)


def _evaluated_frame_bounds(transform: ElasticTransform, begin, shape):
    """The extremes of the frame coordinates of every voxel of the box (at most 3 axes), as
    the compiled kernel (``CoordinateSlabs``) evaluates them.

    For 3-axis boxes of over ``_TILED_VOXELS`` voxels, only the tiles (``_TILE``) whose
    bounds (``_tile_bounds``) could still move the floor of the smallest or the ceil of the
    largest coordinate are evaluated, the most extreme first: the box's faces, where affine
    extremes lie, and the interior only where the spline could reach past them. The floor and
    ceil are those of every voxel's."""
    slabs = CoordinateSlabs(transform, begin, shape)
    dims = transform.dims
    if dims == 3 and math.prod(shape) > _TILED_VOXELS:
        starts = [np.arange(0, s, t) for s, t in zip(shape, _TILE, strict=True)]
        tile_low, tile_high = _tile_bounds(transform, begin, shape, starts)
        tile_low, tile_high = tile_low.reshape(3, -1), tile_high.reshape(3, -1)
        grid = np.meshgrid(*starts, indexing="ij")
        begins = np.stack([g.ravel() for g in grid], axis=1).astype(np.int64)
        ends = np.minimum(begins + np.array(_TILE), np.array(shape)).astype(np.int64)
        low = np.full(dims, np.inf)
        high = np.full(dims, -np.inf)
        done = np.zeros(tile_low.shape[1], dtype=bool)
        # The tiles that bound each extreme first, then those that could still widen the
        # box, the most promising first: each visit can rule out more of the rest.
        extremes = [n for d in range(3) for n in (int(np.argmin(tile_low[d])),
                                                  int(np.argmax(tile_high[d])))]
        slabs.visit_tiles(begins, ends, tile_low, tile_high, np.array(extremes), low, high,
                          done)
        widening = (np.floor(tile_low) < np.floor(low)[:, None]).any(axis=0) | (
            np.ceil(tile_high) > np.ceil(high)[:, None]).any(axis=0)
        candidates = np.flatnonzero(widening & ~done)
        reach = np.max(np.concatenate([low[:, None] - tile_low[:, candidates],
                                       tile_high[:, candidates] - high[:, None]]), axis=0)
        slabs.visit_tiles(begins, ends, tile_low, tile_high,
                          candidates[np.argsort(-reach, kind="stable")], low, high, done)
        return low, high
    if dims < 3:
        values = slabs.evaluate(0, shape[0]).reshape(dims, -1)
        return values.min(axis=1).astype(float), values.max(axis=1).astype(float)
    low = np.full(dims, np.inf)
    high = np.full(dims, -np.inf)
    count = max(1, _SLAB_VOXELS // max(1, shape[1] * shape[2]))
    out = np.empty((dims, count, *shape[1:]), dtype=_DTYPE)
    for first in range(0, shape[0], count):
        n = min(count, shape[0] - first)
        values = slabs.evaluate(first, n, out if n == count else None).reshape(dims, -1)
        np.minimum(low, values.min(axis=1), out=low)
        np.maximum(high, values.max(axis=1), out=high)
    return low, high


def section_shifts(
    draws: np.ndarray, offsets: np.ndarray, prob_slip: float, prob_shift: float
) -> np.ndarray:
    """Per-section whole-voxel shifts of the last two axes (gunpowder's misalignment).

    Section ``z`` slips (only it moves, by ``offsets[z]``) when ``draws[z] < prob_slip``, or
    shifts (it and all following sections move) when ``draws[z] < prob_slip + prob_shift``.

    Args:
        draws (numpy.ndarray): one uniform [0, 1) draw per section.
        offsets (numpy.ndarray): ``(sections, 2)`` integer offsets.
        prob_slip (float): probability of a slip.
        prob_shift (float): probability of a shift.

    Example:
        >>> section_shifts(np.array([0.9, 0.1, 0.9, 0.3]), np.array([[0, 0], [1, 2], [0, 0],
        ...                [5, 5]]), prob_slip=0.2, prob_shift=0.2)[:, 1:].tolist()
        [[0, 0], [1, 2], [0, 0], [5, 5]]
    """
    draws = np.asarray(draws)
    offsets = np.asarray(offsets, dtype=np.int64)
    shifts = np.zeros((len(draws), 3), dtype=np.int64)
    for z, draw in enumerate(draws):
        if draw < prob_slip:
            shifts[z, 1:] += offsets[z]
        elif draw < prob_slip + prob_shift:
            shifts[z:, 1:] += offsets[z]
    return shifts
