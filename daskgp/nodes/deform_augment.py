"""``DeformAugment``: random rotation, scale and elastic deformation in world units, shared by
arrays at any voxel size; planned from control points and ROI corners, warped chunk-wise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey
from ..names import task_prefix
from ..plans import RequestPlans, planned_arrays
from ..provider import BatchFilter
from ..request import BatchRequest
from ..specs import ArraySpec, guess_interpolatable
from ..transforms import (
    DeformTransform,
    GridTransform,
    chunked_warp,
    control_lattice,
    fused_source,
    output_chunk_shape,
    plane_rotation,
    quaternion_rotation,
    source_box,
    spline_coefficients,
    warp_locations,
    world_displacement,
)

_PLAN_CACHE_SIZE = 16


class DeformAugment(BatchFilter):
    """Randomly rotate, scale and elastically deform a batch, as gunpowder's ``DeformAugment``.

    One transform in world units, drawn from the request's seeded generators, is shared by
    all requested arrays, whatever their voxel sizes, so they stay aligned. The value at a
    world point ``p`` (a voxel's centre) is read from the source at::

        T(p) = c + R (p - c) / scale + spline(p)

    ``c`` is the centre of the total requested ROI, ``R`` a rotation (uniformly distributed
    over all 3D rotations, or by an angle uniform in [0, 2 pi) in a plane), ``spline`` the
    cubic B-spline through displacements drawn with ``jitter_sigma`` at control points every
    ``control_point_spacing`` (world multiples). Upstream, each array is requested on the
    bounding box of its source coordinates plus interpolation support, on its voxel grid,
    computed from control points and ROI corners. Each array is warped chunk-wise
    (``chunked_warp``, tasks ``deform-augment-…``): linearly if interpolatable, else nearest
    (labels keep their values); outside the source: 0. Leading axes (channels, and ROI axes
    before the last ``spatial_dims``) share the transform. Requested graphs move with the
    content (``transforms.warp_locations`` inverts the transform at each point, Newton
    iterations on the finest requested voxel grid); points that leave the ROI are dropped.

    Differences from gunpowder: rotations are true rotations in world units (gunpowder
    rotates in control-point units, which stretches when ``control_point_spacing`` is
    anisotropic) and compose with the scale (gunpowder adds the rotation's displacement to a
    scaled identity); the jitter is a cubic spline (gunpowder interpolates the control points
    linearly); a voxel stands for its centre (gunpowder: its corner, which shifts arrays of
    different voxel sizes against each other under rotation or scale); ``transform_key``
    holds the total displacement ``T(p) - p`` on the requested ROI (gunpowder: rotation and
    jitter only, on the whole control grid); random draws come from the request's seed, not
    the global ``random``.

    Args:
        control_point_spacing (int or tuple of int): distance between control points, world
            units per spatial axis.
        jitter_sigma (float or tuple of float): standard deviation of the control points'
            displacement, world units per spatial axis.
        scale_interval (tuple of two float): interval of the scale, drawn uniformly; > 1
            zooms in (the source offsets from the centre are the output's divided by it).
        rotate (bool): rotate randomly: uniformly over all rotations in 3D, by an angle
            uniform in [0, 2 pi) in 2D (or in the plane of two ``rotation_axes``).
        subsample (int): evaluate the elastic displacement every ``subsample`` voxels (of the
            finest requested voxel size) only, and interpolate linearly in between.
        spatial_dims (int): number of trailing ROI axes to deform; leading ROI axes are
            treated like channels.
        use_fast_points_transform (bool): gunpowder's option for graphs; accepted, no effect
            (points are always inverted exactly).
        recompute_missing_points (bool): likewise.
        transform_key (ArrayKey, optional): provide the displacement ``T(p) - p`` (world
            units, float32, one channel per spatial axis) under this key, at voxel size
            ``control_point_spacing``, for the ROI requested.
        graph_raster_voxel_size (tuple of int, optional): gunpowder's option for graphs
            (the grid its points are rasterized on); accepted, no effect (no rasterization).
        p (float): probability of augmenting a batch at all (when skipped, a requested
            ``transform_key`` holds zeros).
        rotation_axes (tuple of int, optional): spatial axes (0 = first spatial axis) to
            rotate in: two for a plane rotation, three for a 3D one. Default: all.
        chunk_shape (int or tuple of int, optional): output chunk size in voxels per spatial
            axis (default: an output of up to 8M voxels in one chunk, one task per array;
            larger ones in chunks of 128 voxels per axis).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.arange(64, dtype=np.float32).reshape(8, 8))
        >>> pipeline = source + gp.DeformAugment((4, 4), (0, 0), scale_interval=(2, 2),
        ...                                      rotate=False, spatial_dims=2)
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request[raw] = gp.ArraySpec(roi=gp.Roi((2, 2), (4, 4)))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data[0]
        array([24.75, 25.25, 25.75, 26.25], dtype=float32)
    """

    lazy = True

    def __init__(
        self,
        control_point_spacing: int | Sequence[int],
        jitter_sigma: float | Sequence[float],
        scale_interval: Sequence[float] = (1.0, 1.0),
        rotate: bool = True,
        subsample: int = 1,
        spatial_dims: int = 3,
        use_fast_points_transform: bool = False,
        recompute_missing_points: bool = True,
        transform_key: ArrayKey | None = None,
        graph_raster_voxel_size: Sequence[int] | None = None,
        p: float = 1.0,
        rotation_axes: Sequence[int] | None = None,
        chunk_shape: int | Sequence[int] | None = None,
    ) -> None:
        def fail(message: str):
            raise PipelineSetupError(f"DeformAugment: {message}")

        if np.ndim(control_point_spacing) and np.ndim(jitter_sigma) and (
            len(control_point_spacing) != len(jitter_sigma)
        ):
            fail(f"control_point_spacing {control_point_spacing} and jitter_sigma "
                 f"{jitter_sigma} must have the same number of dimensions")
        if min(np.ravel(control_point_spacing)) <= 0 or min(np.ravel(jitter_sigma)) < 0:
            fail(f"control_point_spacing {control_point_spacing} must be positive and "
                 f"jitter_sigma {jitter_sigma} non-negative")
        if len(scale_interval) != 2 or not min(scale_interval) > 0:
            fail(f"scale_interval {scale_interval} must be a positive (min, max) pair")
        if int(subsample) < 1 or int(spatial_dims) < 1:
            fail(f"subsample ({subsample}) and spatial_dims ({spatial_dims}) must be at least 1")
        if rotation_axes is not None:
            axes = sorted(int(a) for a in rotation_axes)
            if not (2 <= len(set(axes)) == len(axes) <= 3) or not all(
                0 <= a < spatial_dims for a in axes
            ):
                fail(f"rotation_axes {rotation_axes} must be 2 or 3 distinct spatial axes, "
                     f"each in [0, spatial_dims={spatial_dims})")
        self.control_point_spacing = control_point_spacing
        self.jitter_sigma = jitter_sigma
        self.scale_min = float(scale_interval[0])
        self.scale_max = float(scale_interval[1])
        self.rotate = bool(rotate)
        self.subsample = int(subsample)
        self.spatial_dims = int(spatial_dims)
        self.use_fast_points_transform = use_fast_points_transform
        self.recompute_missing_points = recompute_missing_points
        self.transform_key = transform_key
        self.graph_raster_voxel_size = graph_raster_voxel_size
        self.p = float(p)
        self.rotation_axes = None if rotation_axes is None else sorted(
            int(a) for a in rotation_axes)
        self.chunk_shape = chunk_shape

    def setup(self) -> None:
        self._plans = None  # upstream specs may differ from an earlier build
        if self.transform_key is None:
            return
        total_roi = self.spec.get_total_roi()
        dims = self.spatial_dims if total_roi is None else min(self.spatial_dims, total_roi.dims)
        spacing = Coordinate(int(s) for s in _per_axis(
            self, self.control_point_spacing, dims, "control_point_spacing", PipelineSetupError))
        roi = None
        if total_roi is not None:
            roi = Roi(total_roi.begin[-dims:], total_roi.shape[-dims:])
            if not roi.unbounded:
                roi = roi.snap_to_grid(spacing, mode="shrink")
        self.provides(self.transform_key, ArraySpec(roi=roi, voxel_size=spacing,
                                                    interpolatable=True, dtype=np.float32))

    def skip_node(self, request: BatchRequest) -> bool:
        # A requested transform_key is served (as zeros) even when the batch is not deformed.
        return self._skipped(request) and (
            self.transform_key is None or self.transform_key not in request)

    def prepare(self, request: BatchRequest) -> BatchRequest:
        plan = self._plan(request)
        dependencies = BatchRequest()
        for key, spec in request.array_specs.items():
            if key == self.transform_key:
                continue
            dependencies[key] = spec.copy()
            if not plan.covers(key, spec):
                continue
            upstream_roi = plan.upstream_roi(key, spec.roi)
            provided = self.spec[key].roi
            if provided is not None and not provided.contains(upstream_roi):
                raise BatchRequestError(
                    f"{self.name()}: {key}'s requested ROI {spec.roi} needs the upstream ROI "
                    f"{upstream_roi} (grown by rotation, scale and jitter), which is not inside "
                    f"the provided ROI {provided}; request a smaller ROI or add a Pad upstream"
                )
            dependencies[key].roi = upstream_roi
        for key, spec in request.graph_specs.items():
            dependencies[key] = spec.copy()
            if plan.transform is not None:
                roi, provided = plan.graph_upstream_roi(spec.roi), self.spec[key].roi
                dependencies[key].roi = roi if provided is None else roi.intersect(provided)
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        plan = self._plan(request)
        outputs = Batch()
        prefix = task_prefix(self.name())
        for key in plan.keys:
            spec = (self.spec[key] if key == self.transform_key else batch[key].spec).copy()
            spec.roi = request[key].roi
            if key == self.transform_key:
                outputs[key] = Array(self._displacement(plan, spec, prefix), spec)
                continue
            if plan.transform is None:
                continue  # not deformed: the batch passes through
            array = batch[key]
            grid = plan.grid(key, spec.roi)
            source_begin = (plan.spatial(array.spec.roi).begin
                            - plan.spatial(spec.roi).begin) / plan.voxel_sizes[key]
            interpolatable = self.spec[key].interpolatable
            if interpolatable is None:
                interpolatable = guess_interpolatable(array.data.dtype)
            # A Normalize right upstream is fused: read its input, normalize in the warp.
            source, normalization = fused_source(array.data)
            data = chunked_warp(
                source, tuple(source_begin), grid, (0,) * grid.dims, grid.grid_shape,
                order=1 if interpolatable else 0, chunk_shape=self.chunk_shape, name=prefix,
                node_name=self.name(), normalization=normalization,
            )
            outputs[key] = Array(data, spec, array.attrs)
        for key in request.graph_specs:
            if plan.transform is not None:
                outputs[key] = plan.warp_graph(batch[key], request[key].roi)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _skipped(self, request: BatchRequest) -> bool:
        return self.rng(request, "skip").random() > self.p

    def _plan(self, request: BatchRequest) -> _Plan:
        plans = self.__dict__.get("_plans")
        if plans is None:  # first use, or unpickled on a worker
            plans = self._plans = RequestPlans(lambda r: _Plan(self, r), _PLAN_CACHE_SIZE)
        return plans.get(request)

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state.pop("_plans", None)
        return state

    def _draw_rotation(self, request: BatchRequest, dims: int) -> np.ndarray:
        """The rotation matrix (spatial axes) of this request."""
        if not self.rotate or dims < 2:
            return np.eye(dims)
        axes = list(range(dims)) if self.rotation_axes is None else self.rotation_axes
        if max(axes) >= dims or len(axes) > 3:
            raise BatchRequestError(
                f"{self.name()}: cannot rotate in axes {axes} of a request with {dims} spatial "
                "dimensions; set rotation_axes to 2 or 3 of its spatial axes"
            )
        rng = self.rng(request, "rotation")
        if len(axes) == 2:
            return plane_rotation(dims, axes, rng.random() * 2 * math.pi)
        return quaternion_rotation(dims, axes, rng.normal(size=4))

    def _draw_transform(self, request: BatchRequest, total_roi: Roi,
                        finest: np.ndarray) -> DeformTransform:
        dims = total_roi.dims
        spacing = np.array(_per_axis(self, self.control_point_spacing, dims,
                                     "control_point_spacing"))
        sigma = _per_axis(self, self.jitter_sigma, dims, "jitter_sigma")
        begin = np.array(total_roi.begin, dtype=np.float64)
        end = np.array(total_roi.end, dtype=np.float64)
        subsample_origin = subsample_spacing = None
        margin = 0.0
        if self.subsample > 1:
            subsample_origin, subsample_spacing = begin + finest / 2, self.subsample * finest
            margin = subsample_spacing  # the lattice points beyond the ROI need control points
        control_origin, counts = control_lattice(begin - margin, end + margin, spacing)
        coefficients = None
        if any(s > 0 for s in sigma):
            jitter = self.rng(request, "jitter")
            values = np.zeros((dims, *counts))
            for d in range(dims):
                if sigma[d] > 0:
                    values[d] = jitter.normal(scale=sigma[d], size=counts)
            coefficients = spline_coefficients(values)
        scale = self.scale_min
        if self.scale_max != self.scale_min:
            scale += self.rng(request, "scale").random() * (self.scale_max - self.scale_min)
        matrix = self._draw_rotation(request, dims) / scale
        return DeformTransform((begin + end) / 2, matrix, control_origin, spacing, coefficients,
                               subsample_origin, subsample_spacing)

    def _displacement(self, plan: _Plan, spec: ArraySpec, prefix: str) -> da.Array:
        """The lazy ``transform_key`` array: ``T(p) - p`` on the voxels of ``spec``."""
        voxel_size = spec.voxel_size
        shape = tuple(spec.roi.shape / voxel_size)
        dims = len(shape)
        chunk_shape = output_chunk_shape(self.chunk_shape, shape)
        chunks = ((dims,), *normalize_chunks(tuple(chunk_shape), shape))
        if plan.transform is None:
            return da.zeros((dims, *shape), dtype=np.float32, chunks=chunks)
        grid_begin = tuple(float(b) for b in spec.roi.begin)
        token = tokenize(plan.transform, grid_begin, tuple(voxel_size), chunks)
        return da.map_blocks(
            _displacement_block, plan.transform, grid_begin, tuple(voxel_size), chunks=chunks,
            dtype=np.float32, meta=np.empty((0,) * (dims + 1), np.float32),
            name=f"{prefix}-displacement-{token}",
        )


def _displacement_block(transform, grid_begin, voxel_size, block_info=None) -> np.ndarray:
    location = block_info[None]["array-location"][1:]
    return world_displacement(transform, grid_begin, voxel_size,
                              [end - begin for begin, end in location],
                              [begin for begin, _ in location])


def _per_axis(node, value, dims: int, what: str, error=BatchRequestError) -> tuple[float, ...]:
    """``value`` (a number or one per axis) as one float per spatial axis."""
    values = (value,) * dims if np.ndim(value) == 0 else tuple(np.ravel(value))
    if len(values) != dims:
        raise error(
            f"{node.name()}: {what}={value} has {len(values)} entries, but there are {dims} "
            "spatial dimensions to deform"
        )
    return tuple(float(v) for v in values)


class _Plan:
    """The transform of one request, and each requested array's view of it."""

    def __init__(self, node: DeformAugment, request: BatchRequest) -> None:
        specs, keys = planned_arrays(node, request, graphs=True)
        self.keys = keys or list(specs)
        self.transform = None
        self._grids = {}
        if request.graph_specs and not self.keys:
            raise BatchRequestError(
                f"{node.name()}: {list(request.graph_specs)} requested without any spatial "
                "array; the transform is drawn for the requested arrays, request one with it"
            )
        if not self.keys:
            return
        self.dims = min(node.spatial_dims, min(specs[key].roi.dims for key in self.keys))
        self.voxel_sizes = {}
        for key in specs:
            voxel_size = node.spec[key].voxel_size
            if voxel_size is None:
                raise BatchRequestError(f"{node.name()}: {key} has no voxel size upstream")
            self.voxel_sizes[key] = Coordinate(voxel_size[-self.dims:])
        total_roi = None
        for key in self.keys:
            roi = self.spatial(specs[key].roi)
            total_roi = roi if total_roi is None else total_roi.union(roi)
        self.total_roi = total_roi
        if node._skipped(request):
            return
        finest = np.min([self.voxel_sizes[key] for key in self.keys], axis=0).astype(np.float64)
        self.transform = node._draw_transform(request, total_roi, finest)

    def spatial(self, roi: Roi) -> Roi:
        """The deformed (last ``dims``) axes of ``roi``."""
        return Roi(roi.begin[-self.dims:], roi.shape[-self.dims:])

    def covers(self, key: ArrayKey, spec) -> bool:
        """Whether ``key`` is warped: a spatial array in the plan (placeholders too, if inside
        the total ROI, where the control points are)."""
        if self.transform is None or spec.nonspatial or spec.roi is None:
            return False
        return key in self.keys or self.total_roi.contains(self.spatial(spec.roi))

    def grid(self, key: ArrayKey, roi: Roi) -> GridTransform:
        """The transform on the voxel grid of ``key``'s requested ``roi``."""
        spatial = self.spatial(roi)
        cache_key = (key, tuple(spatial.begin), tuple(spatial.shape))
        if cache_key not in self._grids:
            voxel_size = self.voxel_sizes[key]
            self._grids[cache_key] = self.transform.on_grid(
                tuple(spatial.begin), tuple(voxel_size), tuple(spatial.shape / voxel_size))
        return self._grids[cache_key]

    def graph_grid(self, roi: Roi) -> tuple[GridTransform, Roi, Coordinate]:
        """The transform on the finest voxel grid over ``roi`` (spatial, grown to whole
        voxels of the total ROI's grid), that grid's ROI and voxel size."""
        step = Coordinate(np.min([self.voxel_sizes[k] for k in self.keys], axis=0))
        spatial, origin = self.spatial(roi), self.total_roi.begin
        begin = Coordinate(o + math.floor((b - o) / v) * v
                           for b, o, v in zip(spatial.begin, origin, step, strict=True))
        end = Coordinate(o + math.ceil((e - o) / v) * v
                         for e, o, v in zip(spatial.end, origin, step, strict=True))
        grid_roi = Roi(begin, end - begin)
        grid = self.transform.on_grid(tuple(begin), tuple(step),
                                      tuple(grid_roi.shape / step))
        return grid, grid_roi, step

    def graph_upstream_roi(self, roi: Roi) -> Roi:
        """Where the points that can land in ``roi`` come from: the source box of its grid,
        a voxel wider (points sit anywhere in a voxel)."""
        grid, grid_roi, step = self.graph_grid(roi)
        box_begin, box_end = source_box(grid, (0,) * grid.dims, grid.grid_shape)
        begin = grid_roi.begin + Coordinate(box_begin) * step - step
        shape = (Coordinate(box_end) - Coordinate(box_begin)) * step + step * 2
        leading = roi.dims - self.dims
        return Roi(tuple(roi.begin[:leading]) + tuple(begin),
                   tuple(roi.shape[:leading]) + tuple(shape))

    def warp_graph(self, graph, roi: Roi):
        """``graph`` with each point moved where the transform moves its image content."""
        grid, grid_roi, step = self.graph_grid(roi)
        locations = warp_locations(grid, graph.locations, grid_roi.begin, step)
        return graph.with_locations(locations, roi)

    def upstream_roi(self, key: ArrayKey, roi: Roi) -> Roi:
        """The ROI of ``key`` whose voxels the output voxels of ``roi`` read."""
        grid = self.grid(key, roi)
        box_begin, box_end = source_box(grid, (0,) * grid.dims, grid.grid_shape)
        voxel_size = self.voxel_sizes[key]
        spatial = self.spatial(roi)
        begin = spatial.begin + Coordinate(box_begin) * voxel_size
        shape = (Coordinate(box_end) - Coordinate(box_begin)) * voxel_size
        leading = roi.dims - self.dims
        return Roi(tuple(roi.begin[:leading]) + tuple(begin),
                   tuple(roi.shape[:leading]) + tuple(shape))


__all__ = ["DeformAugment"]
