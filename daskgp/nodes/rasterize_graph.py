"""``RasterizeGraph``: draws a graph into an array as balls (or peaks) and tubes, lazily.

Each output chunk is one task that draws only the points and edges near it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey, GraphKey
from ..names import NodeTask, task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..specs import ArraySpec, GraphSpec
from ..transforms._raster import raster_block


class RasterizationSettings:
    """How ``RasterizeGraph`` draws, as gunpowder's ``RasterizationSettings``.

    Args:
        radius (float or tuple of float): radius of balls and tubes (mode ``"ball"``) or
            sigma of peaks (mode ``"peak"``), in world units, per axis.
        mode (str): ``"ball"`` or ``"peak"``.
        mask (ArrayKey, optional): a label array; a point is drawn only inside the object
            (label) under it.
        inner_radius_fraction (float, optional): mode ``"ball"``: draw hollow balls whose
            hole has this fraction of ``radius``, in (0, 1).
        fg_value (int): mode ``"ball"``: value of drawn voxels (default 1).
        bg_value (int): mode ``"ball"``: value of the background (default 0).
        edges (bool): draw edges as tubes (peaks: ridges) between their nodes.
        color_attr (str, optional): mode ``"ball"``: draw each node and edge with the value
            of this attribute; those without it are skipped.

    Example:
        >>> RasterizationSettings(radius=(2, 4, 4), mode="ball").radius.tolist()
        [2.0, 4.0, 4.0]
    """

    def __init__(self, radius, mode: str = "ball", mask: ArrayKey | None = None,
                 inner_radius_fraction: float | None = None, fg_value=1, bg_value=0,
                 edges: bool = True, color_attr: str | None = None) -> None:
        radius = np.array([radius], dtype=np.float64).flatten()
        if mode not in ("ball", "peak"):
            raise PipelineSetupError(f"RasterizationSettings: unknown mode {mode!r}")
        if np.any(radius <= 0):
            raise PipelineSetupError(f"RasterizationSettings: radius {radius} must be > 0")
        if inner_radius_fraction is not None and not 0 < inner_radius_fraction < 1:
            raise PipelineSetupError(
                f"RasterizationSettings: inner_radius_fraction={inner_radius_fraction} must "
                "lie in (0, 1)"
            )
        self.radius = radius
        self.mode = mode
        self.mask = mask
        self.inner_radius_fraction = inner_radius_fraction
        self.fg_value = fg_value
        self.bg_value = bg_value
        self.edges = edges
        self.color_attr = color_attr


class RasterizeGraph(BatchFilter):
    """Draw ``graph`` into a new array ``array``: balls of ``radius`` at nodes and tubes along
    edges (mode ``"ball"``), or Gaussian peaks and ridges (mode ``"peak"``).

    Lazy: the output is a dask array in chunks of ``chunk_shape`` voxels, each drawn by one
    task from the points and edges within reach of that chunk only (picked in the driver,
    where graphs live). A node is drawn at its voxel (``floor(location / voxel_size)``) and a
    voxel belongs to a ball when its (radius-normalized) distance to that voxel is <= 1, as
    gunpowder's distance transform decides; tubes use the distance to the segment between
    the two nodes' voxels.

    Differences from gunpowder: edges are exact tubes (gunpowder draws a voxel line and
    dilates it, and misplaces lines for ROIs not at the origin); peaks are
    ``exp(-d^2 / 2)`` of the normalized distance ``d`` to the nearest node or edge, 1 at a
    node (gunpowder filters impulses with a Gaussian and divides by the batch maximum, which
    a lazy chunk cannot know); with a mask, an edge is drawn inside the label under its
    first node.

    Args:
        graph (GraphKey): the graph to draw.
        array (ArrayKey): the array to create.
        array_spec (ArraySpec, optional): voxel size (default 1 per axis) and dtype (default
            uint8 for balls, float32 for peaks) of the array.
        settings (RasterizationSettings, optional): default: balls of radius 1.
        chunk_shape (int or tuple of int): output chunk size in voxels.

    Example:
        >>> points, raster = gp.GraphKey("POINTS"), ArrayKey("RASTER")
        >>> graph = gp.Graph.from_arrays([0], [[2.5, 2.5]],
        ...                              spec=gp.GraphSpec(roi=Roi((0, 0), (5, 5))))
        >>> pipeline = gp.GraphSource(points, graph) + RasterizeGraph(
        ...     points, raster, settings=RasterizationSettings(1))
        >>> request = gp.BatchRequest()
        >>> request[raster] = ArraySpec(roi=Roi((0, 0), (5, 5)))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raster].data
        array([[0, 0, 0, 0, 0],
               [0, 0, 1, 0, 0],
               [0, 1, 1, 1, 0],
               [0, 0, 1, 0, 0],
               [0, 0, 0, 0, 0]], dtype=uint8)
    """

    lazy = True

    def __init__(self, graph: GraphKey, array: ArrayKey, array_spec: ArraySpec | None = None,
                 settings: RasterizationSettings | None = None,
                 chunk_shape: int | Sequence[int] = 64) -> None:
        self.graph = graph
        self.array = array
        self.array_spec = ArraySpec() if array_spec is None else array_spec.copy()
        self.settings = RasterizationSettings(1) if settings is None else settings
        self.chunk_shape = chunk_shape

    def setup(self) -> None:
        graph_roi = self.upstream_spec(self.graph, "rasterize").roi
        if graph_roi is None:
            raise PipelineSetupError(f"{self.name()}: {self.graph} has no ROI upstream")
        spec = self.array_spec.copy()
        dims = graph_roi.dims
        if spec.voxel_size is None:
            spec.voxel_size = Coordinate((1,) * dims)
        if spec.dtype is None:
            spec.dtype = np.dtype(np.uint8 if self.settings.mode == "ball" else np.float32)
        if spec.interpolatable is None:
            spec.interpolatable = self.settings.mode == "peak"
        spec.roi = graph_roi
        radius = self.settings.radius
        if len(radius) not in (1, dims):
            raise PipelineSetupError(
                f"{self.name()}: radius {radius.tolist()} needs 1 or {dims} entries"
            )
        if self.settings.mask is not None:
            mask = self.upstream_spec(self.settings.mask, "mask the rasterization with")
            if mask.voxel_size != spec.voxel_size:
                raise PipelineSetupError(
                    f"{self.name()}: mask {self.settings.mask} has voxel size "
                    f"{mask.voxel_size}, the rasterized {self.array} {spec.voxel_size}; they "
                    "must be equal"
                )
        self.radius = np.broadcast_to(radius, (dims,)).astype(np.float64)
        self.provides(self.array, spec)
        self.enable_autoskip()

    def _context(self) -> Coordinate:
        """How far (world units) a node or edge reaches: radius (4 sigma for peaks, as
        scipy's Gaussian filter) plus a voxel (a node is drawn at its voxel)."""
        reach = self.radius * (4 if self.settings.mode == "peak" else 1)
        return Coordinate(math.ceil(r) + v for r, v in zip(reach, self.spec[self.array].voxel_size,
                                                           strict=True))

    def prepare(self, request: BatchRequest) -> BatchRequest:
        context = self._context()
        roi = request[self.array].roi.grow(context, context)
        dependencies = BatchRequest()
        dependencies[self.graph] = GraphSpec(roi=roi.intersect(self.spec[self.graph].roi))
        if self.settings.mask is not None:
            voxel_size = self.spec[self.array].voxel_size
            mask_roi = roi.snap_to_grid(voxel_size).intersect(self.spec[self.settings.mask].roi)
            dependencies[self.settings.mask] = ArraySpec(roi=mask_roi)
        return dependencies

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        spec = self.spec[self.array].copy()
        roi = request[self.array].roi
        spec.roi = roi
        voxel_size = np.array(spec.voxel_size)
        origin = np.array(roi.begin) // voxel_size  # global voxel index of the first voxel
        shape = tuple(int(s) for s in roi.shape / spec.voxel_size)
        graph = batch[self.graph]
        points, point_colors = self._points(graph)
        segments, segment_colors = self._segments(graph)
        mask = batch[self.settings.mask] if self.settings.mask is not None else None
        scale = voxel_size.astype(np.float32) / self.radius  # gunpowder's edt sampling
        reach = np.ceil(np.array(self._context()) / voxel_size).astype(np.int64)
        chunks = da.core.normalize_chunks(self.chunk_shape, shape)
        prefix = f"{task_prefix(self.name())}-{tokenize(graph, str(roi), self.node_id)}"
        blocks = np.empty([len(c) for c in chunks], dtype=object)
        for index in np.ndindex(blocks.shape):
            begin = origin + np.array([sum(c[:i]) for c, i in zip(chunks, index, strict=True)])
            size = np.array([c[i] for c, i in zip(chunks, index, strict=True)])
            low, high = begin - reach, begin + size + reach
            near = np.all((points >= low) & (points < high), axis=1)
            near_segments = np.all((segments.min(axis=1) < high) & (segments.max(axis=1) >= low),
                                   axis=1)
            mask_block = mask_begin = None
            if mask is not None:
                mask_block, mask_begin = self._mask_block(mask, low, high, voxel_size)
            task = dask.delayed(NodeTask(raster_block, self.name()), pure=True)(
                begin, tuple(int(s) for s in size), points[near], point_colors[near],
                segments[near_segments], segment_colors[near_segments], scale,
                self.settings.mode, self.settings.inner_radius_fraction, spec.dtype,
                self.settings.fg_value, self.settings.bg_value, mask_block, mask_begin,
                dask_key_name=f"{prefix}-{'-'.join(map(str, index))}")
            blocks[index] = da.from_delayed(task, tuple(int(s) for s in size), dtype=spec.dtype)
        outputs = Batch()
        outputs[self.array] = Array(da.block(blocks.tolist()), spec)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _points(self, graph) -> tuple[np.ndarray, np.ndarray]:
        """Voxel indices ``(N, dims)`` and colours of the nodes to draw."""
        voxel_size = np.array(self.spec[self.array].voxel_size, dtype=np.float64)
        voxels = np.floor(graph.locations / voxel_size).astype(np.int64)
        colors = np.ones(len(voxels))
        if self.settings.color_attr is not None:
            colors = np.array([graph._node_attrs.get(i, {}).get(self.settings.color_attr,
                                                                 np.nan)
                               for i in graph.ids.tolist()], dtype=np.float64)
            keep = ~np.isnan(colors)
            voxels, colors = voxels[keep], colors[keep]
        return voxels.reshape(-1, graph.locations.shape[1]), colors

    def _segments(self, graph) -> tuple[np.ndarray, np.ndarray]:
        """End-point voxel indices ``(M, 2, dims)`` and colours of the edges to draw."""
        dims = graph.locations.shape[1]
        if not self.settings.edges or graph.num_edges() == 0:
            return np.zeros((0, 2, dims), np.int64), np.zeros(0)
        voxel_size = np.array(self.spec[self.array].voxel_size, dtype=np.float64)
        rows = np.searchsorted(graph.ids, graph.edge_array, sorter=np.argsort(graph.ids))
        rows = np.argsort(graph.ids)[rows]
        ends = np.floor(graph.locations[rows] / voxel_size).astype(np.int64)
        colors = np.ones(len(ends))
        if self.settings.color_attr is not None:
            colors = np.array([graph._edge_attrs.get((u, v), {}).get(self.settings.color_attr,
                                                                     np.nan)
                               for u, v in graph.edge_array.tolist()], dtype=np.float64)
            keep = ~np.isnan(colors)
            ends, colors = ends[keep], colors[keep]
        return ends, colors

    def _mask_block(self, mask: Array, low, high, voxel_size):
        """The mask's (lazy) voxels in the global voxel box ``[low, high)``, clipped to what
        was fetched, and the global index of its first voxel."""
        mask_roi = mask.spec.roi
        first = np.array(mask_roi.begin) // voxel_size
        last = np.array(mask_roi.end) // voxel_size
        begin, end = np.maximum(low, first), np.minimum(high, last)
        if np.any(end <= begin):
            return None, None
        box = Roi(Coordinate(begin * voxel_size), Coordinate((end - begin) * voxel_size))
        return mask.crop(box).data, begin


__all__ = ["RasterizationSettings", "RasterizeGraph"]
