"""``SimpleAugment``: random mirrors and transposes of the spatial axes, as dask views.

The request is mirrored/transposed upstream about the total ROI, so arrays stay aligned.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch, mark_own_chunk, owns_chunk
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest
from ..transforms import mark_warp_output, warp_rebuild


class SimpleAugment(BatchFilter):
    """Randomly mirror and transpose the spatial axes of every requested array.

    As in gunpowder, the request is transformed on its way upstream (transposed about the
    centre of the total requested ROI, then mirrored within it), so arrays with different
    ROIs or voxel sizes stay aligned: a world position gets the same transform in every
    array. The data is then mirrored (``[::-1]``) and transposed back as dask views; channel
    axes are untouched. Parameters are drawn from the request's seeded generator.

    Differences from gunpowder: axes that may be transposed must have the same voxel size in
    every requested array (checked for every request, whatever the draw; gunpowder fails
    only for the draws that move such an axis);
    ``transpose_probs`` with ``transpose_only`` picks whole permutations (gunpowder mixes
    their entries up); a mirror centre off the voxel grid is snapped to it, as gunpowder
    already does for the transpose centre. Requested graphs are mirrored and transposed with
    the arrays: a point keeps its place relative to the content (voxel values at voxel
    centres; a point on a mirrored lower face lands on the excluded upper face and leaves
    the batch, as in gunpowder).

    Args:
        mirror_only (list of int, optional): spatial axes that may be mirrored (default all).
        transpose_only (list of int, optional): spatial axes that may be permuted among
            themselves (default all). They must have equal voxel sizes.
        mirror_probs (list of float, optional): probability of mirroring each spatial axis
            (default 0.5 each); one entry per spatial axis.
        transpose_probs (dict or list, optional): ``{permutation tuple: weight}`` over full
            permutations of the spatial axes (options that move an axis outside
            ``transpose_only`` are dropped), or a list of per-axis probabilities of leaving
            its place (gunpowder's weighting). Default: every permutation of
            ``transpose_only`` equally likely.
        p (float): probability of augmenting a batch at all (default 1).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.arange(16).reshape(4, 4))
        >>> pipeline = source + gp.SimpleAugment(mirror_probs=[1, 0], transpose_probs=[0, 0])
        >>> request = gp.BatchRequest(random_seed=1)
        >>> request.add(raw, (4, 4))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data[:, 0]
        array([12,  8,  4,  0])
    """

    lazy = True

    def __init__(
        self,
        mirror_only: Sequence[int] | None = None,
        transpose_only: Sequence[int] | None = None,
        mirror_probs: Sequence[float] | None = None,
        transpose_probs: dict | Sequence[float] | None = None,
        p: float = 1.0,
    ) -> None:
        self.mirror_only = None if mirror_only is None else list(mirror_only)
        self.transpose_only = None if transpose_only is None else list(transpose_only)
        self.mirror_probs = None if mirror_probs is None else list(mirror_probs)
        self.transpose_probs = transpose_probs
        self.p = p

    def setup(self) -> None:
        total_roi = self.spec.get_total_roi()
        if total_roi is None:
            raise PipelineSetupError(f"{self.name()}: nothing spatial is provided upstream")
        dims = total_roi.dims
        self.dims = dims
        for option in ("mirror_only", "transpose_only"):
            axes = getattr(self, option)
            if axes is not None and any(not 0 <= a < dims for a in axes):
                raise PipelineSetupError(
                    f"{self.name()}: {option}={axes} names axes outside the {dims} spatial "
                    f"axes of the upstream ROI {total_roi}"
                )
        mirror_axes = range(dims) if self.mirror_only is None else self.mirror_only
        probs = [0.5] * dims if self.mirror_probs is None else self.mirror_probs
        if len(probs) != dims:
            raise PipelineSetupError(
                f"{self.name()}: mirror_probs={probs} needs one entry per spatial axis ({dims})"
            )
        self._mirror_probs = [probs[d] if d in mirror_axes else 0.0 for d in range(dims)]
        self._transpose_dims = (
            list(range(dims)) if self.transpose_only is None else self.transpose_only
        )
        self._permutations = self._permutation_weights()

    def skip_node(self, request: BatchRequest) -> bool:
        return self.rng(request, "skip").random() > self.p

    def prepare(self, request: BatchRequest) -> BatchRequest:
        self._check_voxel_sizes(request)
        mirror, transpose = self._draw(request)
        inverse = [transpose.index(d) for d in range(self.dims)]
        lcm = self._lcm_voxel_size(request)
        total_roi = request.get_total_roi()
        if total_roi is None:
            return request
        center = _snap(total_roi.center, lcm)
        for _, spec in _spatial_specs(request):
            spec.roi = _transpose_roi(spec.roi, center, inverse)
        transposed_total = request.get_total_roi()
        mirror_sum = _snap(transposed_total.begin + transposed_total.end, lcm)
        for _, spec in _spatial_specs(request):
            spec.roi = _mirror_roi(spec.roi, mirror_sum, mirror)
        # Changed in place and returned, like gunpowder: BatchFilter unions the returned
        # ROIs with the request's, which is then this same (transformed) request.
        return request

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        # The same draw as in prepare (a pure function of the request): no state is kept on
        # the node, so several batches may be planned at once.
        mirror, transpose = self._draw(request)
        outputs = Batch()
        for key, array in batch.arrays.items():
            if key not in request or array.spec.nonspatial:
                continue
            channels = array.data.ndim - self.dims
            flips = (slice(None),) * channels + tuple(
                slice(None, None, -1 if m else None) for m in mirror)
            axes = tuple(range(channels)) + tuple(channels + t for t in transpose)
            data = self._orient(array.data, flips, axes)
            spec = array.spec.copy()
            spec.roi = request[key].roi
            outputs[key] = Array(data, spec, array.attrs)
        for key, graph in batch.graphs.items():
            if key in request:
                outputs[key] = _transform_graph(graph, request[key].roi, mirror, transpose)
        return outputs

    # --- internals -----------------------------------------------------------------------------

    def _orient(self, data, flips: tuple, axes: tuple):
        """``data[flips].transpose(axes)``, as views: for a one-chunk dask array (a warp's
        batch-sized output) one task (no getitem and transpose layers to build), else dask's
        slicing and transpose."""
        mirrored = any(f.step is not None for f in flips)
        moved = axes != tuple(range(len(axes)))
        if not (mirrored or moved):
            return data
        if isinstance(data, da.Array) and data.npartitions == 1:
            shape = tuple(data.shape[a] for a in axes)
            oriented = da.map_blocks(
                _oriented, data, flips=flips, axes=axes, chunks=tuple((n,) for n in shape),
                meta=np.empty((0,) * data.ndim, dtype=data.dtype),
                name=f"{task_prefix(self.name())}-" + tokenize(data.name, flips, axes),
            )
            rebuild = warp_rebuild(data)
            if rebuild is not None:
                # A view of a warp's output: an IntensityAugment downstream can still fuse
                # into the warp's task (elementwise with a global mean, it commutes with this).
                mark_warp_output(oriented, lambda post: self._orient(rebuild(post), flips, axes))
            if owns_chunk(data):
                # A view of a chunk that no other task keeps (a warp's output): it owns it too.
                mark_own_chunk(oriented)
            return oriented
        if mirrored:
            data = data[flips]
        return data.transpose(axes) if moved else data

    def _draw(self, request: BatchRequest) -> tuple[list[bool], list[int]]:
        """(mirror per axis, permutation): output axis d comes from upstream axis t[d]."""
        rng = self.rng(request, "mirror-transpose")
        mirror = [bool(rng.random() < p) for p in self._mirror_probs]
        if self._permutations is not None:
            options, weights = self._permutations
            transpose = list(options[rng.choice(len(options), p=weights)])
        else:
            transpose = list(range(self.dims))
            shuffled = rng.permutation(self._transpose_dims)
            for axis, source in zip(self._transpose_dims, shuffled, strict=True):
                transpose[axis] = int(source)
        return mirror, transpose

    def _permutation_weights(self) -> tuple[list[tuple], list[float]] | None:
        if self.transpose_probs is None:
            return None
        dims, allowed = self.dims, set(self._transpose_dims)
        if isinstance(self.transpose_probs, dict):
            weights = {
                tuple(perm): float(w)
                for perm, w in self.transpose_probs.items()
                if sorted(perm) == list(range(dims))
                and all(i == j or i in allowed for i, j in enumerate(perm))
            }
        else:
            probs = list(self.transpose_probs)
            if len(probs) != dims:
                raise PipelineSetupError(
                    f"{self.name()}: transpose_probs={probs} needs one entry per spatial "
                    f"axis ({dims})"
                )
            weights = {}
            for perm in itertools.permutations(range(dims)):
                if any(i != j and i not in allowed for i, j in enumerate(perm)):
                    continue
                weight = 1.0
                for i, (j, prob) in enumerate(zip(perm, probs, strict=True)):
                    weight *= (1 - prob) if i == j else prob
                if weight > 0:
                    weights[perm] = weight
        total = sum(weights.values())
        if not weights or total <= 0:
            raise PipelineSetupError(
                f"{self.name()}: transpose_probs={self.transpose_probs} leaves no permutation "
                f"of the spatial axes (transpose_only={self.transpose_only}) with weight > 0"
            )
        return list(weights), [w / total for w in weights.values()]

    def _check_voxel_sizes(self, request: BatchRequest) -> None:
        """Axes that may trade places must have one voxel size, in every requested array."""
        if self._permutations is None:
            moving = set(self._transpose_dims) if len(self._transpose_dims) > 1 else set()
        else:
            moving = {i for perm in self._permutations[0] for i, j in enumerate(perm) if i != j}
        for key, spec in request.array_specs.items():
            voxel_size = spec.voxel_size or self.spec[key].voxel_size
            if spec.nonspatial or voxel_size is None or not moving:
                continue
            if len({voxel_size[d] for d in moving}) > 1:
                raise BatchRequestError(
                    f"{self.name()}: {key} (ROI {spec.roi}) has voxel size {voxel_size}, "
                    f"which differs between the axes {sorted(moving)} that may be transposed; "
                    "set transpose_only to axes of equal voxel size"
                )

    def _lcm_voxel_size(self, request: BatchRequest) -> Coordinate | None:
        keys = [k for k in request.array_specs if k in self.spec]
        return self.spec.get_lcm_voxel_size(keys)


def _oriented(block: np.ndarray, flips: tuple, axes: tuple) -> np.ndarray:
    """A view of ``block`` mirrored (``flips``) and transposed (``axes``)."""
    return block[flips].transpose(axes)


def _spatial_specs(request: BatchRequest):
    for key, spec in request.items():
        if spec.roi is None or (isinstance(key, ArrayKey) and spec.nonspatial):
            continue
        yield key, spec


def _transform_graph(graph, roi: Roi, mirror: list[bool], transpose: list[int]):
    """``graph`` (fetched for the transformed request) moved to ``roi``: output axis ``e``
    takes upstream axis ``transpose[e]``, reflected within the fetched ROI if mirrored."""
    fetched = graph.spec.roi
    locations = graph.locations.astype(np.float64)
    moved = np.empty_like(locations)
    for e, t in enumerate(transpose):
        if mirror[t]:
            moved[:, e] = roi.begin[e] + (fetched.end[t] - locations[:, t])
        else:
            moved[:, e] = roi.begin[e] + (locations[:, t] - fetched.begin[t])
    return graph.with_locations(moved, roi)


def _snap(point: Coordinate, lcm_voxel_size: Coordinate | None) -> Coordinate:
    """``point`` moved down onto the grid of ``lcm_voxel_size`` (unchanged without one)."""
    if lcm_voxel_size is None:
        return point
    return point - Coordinate(p % v for p, v in zip(point, lcm_voxel_size, strict=True))


def _transpose_roi(roi: Roi, center: Coordinate, permutation: list[int]) -> Roi:
    """``roi`` with axis d taken from axis ``permutation[d]``, about ``center``."""
    to_begin = roi.begin - center
    begin = Coordinate(center[d] + to_begin[s] for d, s in enumerate(permutation))
    shape = Coordinate(roi.shape[s] for s in permutation)
    return Roi(begin, shape)


def _mirror_roi(roi: Roi, mirror_sum: Coordinate, mirror: list[bool]) -> Roi:
    """``roi`` reflected along the mirrored axes, ``x -> mirror_sum - x``."""
    begin = Coordinate(
        s - e if m else b for b, e, s, m in zip(roi.begin, roi.end, mirror_sum, mirror, strict=True)
    )
    return Roi(begin, roi.shape)
