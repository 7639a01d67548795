"""``ShiftAugment``: random per-section slips and shifts (misalignment) along one axis.

Each output section is a slice of the upstream dask array at its shifted offset: no warp.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import dask.array as da
import numpy as np

from ..batch import Array, Batch
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Coordinate, Roi
from ..plans import planned_arrays
from ..provider import BatchFilter
from ..request import BatchRequest


class ShiftAugment(BatchFilter):
    """Misalign the sections along ``shift_axis`` by random whole-voxel offsets.

    As in gunpowder, every section (one least-common-voxel-size thick along ``shift_axis``)
    draws a uniform number ``r`` and a normal offset with standard deviation ``sigma`` (world
    units, rounded to the least common voxel size of the requested arrays). With
    ``r < prob_slip`` the section alone slips by that offset; else, with
    ``r < prob_slip + prob_shift``, it and all following sections shift by it. An output
    voxel at world position ``x`` in section ``i`` shows the upstream voxel at
    ``x - shift[i]``; the upstream ROI of every array grows to cover its sections' shifts
    (gunpowder's rule). Every array requested is shifted alike, so arrays stay aligned.

    The draws come from the request's seeded generator. The output is built by slicing the
    upstream dask array once per run of equally shifted sections and concatenating the
    slices (when sections move, the upstream chunks are first merged into whole sections,
    so that the slices line up without rechunking): no interpolation, no new values, cost
    linear in the batch. Channel axes (leading) are untouched.

    Differences from gunpowder: a section slips when ``r < prob_slip`` (gunpowder: ``<=``),
    so zero probabilities always give the identity; channels are supported; ROIs whose
    extent along ``shift_axis`` is not on the sections' grid are an error instead of a silent
    misalignment. Requested graphs move with their sections (a node by the shift of the
    section it lies in), as in gunpowder.

    Args:
        prob_slip (float): probability that a section slips (moves alone).
        prob_shift (float): probability that a section and all following ones move.
        sigma (float or sequence of float): standard deviation of the offsets in world units,
            for every axis but ``shift_axis`` (a float), or per spatial axis (a sequence,
            0 at ``shift_axis``).
        shift_axis (int): the spatial axis whose sections move.
        p (float): probability of augmenting a batch at all (default 1).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> source = gp.ArraySource(raw, np.arange(40).reshape(4, 10))
        >>> pipeline = source + gp.ShiftAugment(prob_slip=0.5, sigma=2, shift_axis=0)
        >>> request = gp.BatchRequest(random_seed=3)
        >>> request.add(raw, (4, 4))
        >>> request[raw].roi = Roi((0, 3), (4, 4))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data
        array([[ 5,  6,  7,  8],
               [11, 12, 13, 14],
               [25, 26, 27, 28],
               [33, 34, 35, 36]])
    """

    lazy = True

    def __init__(
        self,
        prob_slip: float = 0,
        prob_shift: float = 0,
        sigma: float | Sequence[float] = 0,
        shift_axis: int = 0,
        p: float = 1.0,
    ) -> None:
        self.prob_slip = float(prob_slip)
        self.prob_shift = float(prob_shift)
        self.sigma = sigma
        self.shift_axis = int(shift_axis)
        self.p = float(p)

    def setup(self) -> None:
        total_roi = self.spec.get_total_roi()
        if total_roi is None:
            raise PipelineSetupError(f"{self.name()}: nothing spatial is provided upstream")
        dims = total_roi.dims
        if not 0 <= self.shift_axis < dims:
            raise PipelineSetupError(
                f"{self.name()}: shift_axis={self.shift_axis} is not one of the {dims} spatial "
                f"axes of the upstream ROI {total_roi}"
            )
        if min(self.prob_slip, self.prob_shift) < 0 or self.prob_slip + self.prob_shift > 1:
            raise PipelineSetupError(
                f"{self.name()}: prob_slip={self.prob_slip} and prob_shift={self.prob_shift} "
                "must be >= 0 and sum to at most 1"
            )
        if np.ndim(self.sigma) == 0:
            sigmas = [float(self.sigma)] * dims
            sigmas[self.shift_axis] = 0.0
        else:
            sigmas = [float(s) for s in self.sigma]
        if len(sigmas) != dims or sigmas[self.shift_axis] != 0 or not any(sigmas):
            raise PipelineSetupError(
                f"{self.name()}: sigma={self.sigma} must give one value per spatial axis "
                f"({dims}), 0 at shift_axis={self.shift_axis}, and not be 0 everywhere"
            )
        self.sigmas = tuple(sigmas)
        self.dims = dims

    def skip_node(self, request: BatchRequest) -> bool:
        return self.rng(request, "skip").random() > self.p

    def prepare(self, request: BatchRequest) -> BatchRequest:
        plan = _Plan(self, request)
        dependencies = BatchRequest()
        for key, spec in request.array_specs.items():
            dependencies[key] = spec.copy()
            if not plan.covers(spec):
                continue
            upstream_roi = plan.upstream_roi(spec.roi)
            provided = self.spec[key].roi
            if provided is not None and not provided.contains(upstream_roi):
                raise BatchRequestError(
                    f"{self.name()}: {key}'s requested ROI {spec.roi} needs the upstream ROI "
                    f"{upstream_roi} (grown by the section shifts), which is not inside the "
                    f"provided ROI {provided}; request a smaller ROI or add a Pad upstream"
                )
            dependencies[key].roi = upstream_roi
        for key, spec in request.graph_specs.items():
            dependencies[key] = spec.copy()
            if plan.covers(spec):
                roi = plan.upstream_roi(plan.sections_of(spec.roi))
                provided = self.spec[key].roi
                dependencies[key].roi = roi if provided is None else roi.intersect(provided)
        return dependencies

    # --- gunpowder's public helpers (numpy, for users' code that calls them) -------------------

    def shift_and_crop(self, arr: np.ndarray, roi_shape, sub_shift_array: np.ndarray,
                       voxel_size) -> np.ndarray:
        """gunpowder's helper: ``arr`` (upstream data, spatial axes only) with each section
        along ``shift_axis`` rolled by its shift (relative to the largest), cropped to
        ``roi_shape`` (world units). daskgp's node slices lazily instead (same values).

        Example:
            >>> node = ShiftAugment(shift_axis=0)
            >>> node.shift_and_crop(np.arange(8).reshape(2, 4), (2, 2), np.array([[0, 0], [0, 1]]),
            ...                     (1, 1))
            array([[1, 2],
                   [4, 5]])
        """
        sections = len(sub_shift_array)
        if arr.shape[self.shift_axis] % sections:
            raise BatchRequestError(
                f"{self.name()}: the array's length {arr.shape[self.shift_axis]} along "
                f"shift_axis={self.shift_axis} is not divisible by the {sections} sections of "
                "sub_shift_array"
            )
        voxels_per_section = arr.shape[self.shift_axis] // sections
        shifts = np.asarray(sub_shift_array) // np.array(voxel_size, dtype=int)
        shifts = shifts - shifts.max(axis=0)
        result = arr.copy()
        view = np.moveaxis(result, self.shift_axis, 0)
        for index in range(view.shape[0]):
            shift = np.delete(shifts[index // voxels_per_section], self.shift_axis)
            view[index] = np.roll(view[index], tuple(shift), axis=tuple(range(len(shift))))
        shape = Coordinate(roi_shape) // Coordinate(voxel_size)
        return result[tuple(slice(0, n) for n in shape)]

    @staticmethod
    def get_sub_shift_array(total_roi: Roi, item_roi: Roi, shift_array: np.ndarray,
                            shift_axis: int, lcm_voxel_size) -> np.ndarray:
        """gunpowder's helper: the rows of ``shift_array`` (one per section of ``total_roi``)
        for the sections that ``item_roi`` spans.

        Example:
            >>> ShiftAugment.get_sub_shift_array(Roi((0, 0), (4, 4)), Roi((2, 0), (2, 4)),
            ...                                  np.arange(8).reshape(4, 2), 0, (1, 1))
            array([[4, 5],
                   [6, 7]])
        """
        step = Coordinate(lcm_voxel_size)[shift_axis]
        first = (item_roi.offset - total_roi.offset)[shift_axis] // step
        return shift_array[first : first + item_roi.shape[shift_axis] // step]

    @staticmethod
    def construct_global_shift_array(shift_axis_len: int, shift_sigmas, prob_slip: float,
                                     prob_shift: float, lcm_voxel_size) -> np.ndarray:
        """gunpowder's helper, with its draws: per section ``random.random()``, then one
        ``numpy.random.normal`` per axis, and its ``<=`` thresholds. daskgp's node itself
        draws from the request's seeded generator (``section_shifts``).

        Example:
            >>> import random; random.seed(1); np.random.seed(1)
            >>> ShiftAugment.construct_global_shift_array(3, (0, 4), 0.0, 1.0, (1, 2)).tolist()
            [[0, -2], [0, -6], [0, -16]]
        """
        if prob_slip + prob_shift > 1:
            raise PipelineSetupError(
                f"ShiftAugment: prob_slip={prob_slip} + prob_shift={prob_shift} exceeds 1"
            )
        lcm = np.array(lcm_voxel_size, dtype=int)
        draws, offsets = [], []
        for _ in range(shift_axis_len):
            draws.append(random.random())
            slip = [np.random.normal(scale=sigma / lcm[d]) for d, sigma in enumerate(shift_sigmas)]
            offsets.append(np.rint(slip).astype(int) * lcm)
        offsets = np.array(offsets, dtype=int).reshape(shift_axis_len, len(shift_sigmas))
        return section_shifts(np.array(draws), offsets, prob_slip, prob_shift, inclusive=True)

    @staticmethod
    def compute_upstream_roi(request_roi: Roi, sub_shift_array: np.ndarray) -> Roi:
        """gunpowder's helper: ``request_roi`` grown to cover what its shifted sections show.

        Example:
            >>> ShiftAugment.compute_upstream_roi(Roi((0, 0), (2, 4)), np.array([[0, -1], [0, 2]]))
            [0:2, -2:5] (2, 7)
        """
        max_shift = Coordinate(np.asarray(sub_shift_array).max(axis=0))
        min_shift = Coordinate(np.asarray(sub_shift_array).min(axis=0))
        return Roi(request_roi.offset - max_shift, request_roi.shape + max_shift - min_shift)

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        # The same draw as in prepare: the plan is a pure function of the request.
        plan = _Plan(self, request)
        outputs = Batch()
        for key in plan.keys:
            array = batch[key]
            spec = array.spec.copy()
            spec.roi = request[key].roi
            data = plan.shifted(array.data, array.spec.roi, spec.roi, array.spec.voxel_size)
            outputs[key] = Array(data, spec, array.attrs)
        for key in request.graph_specs:
            if key in batch.graphs and plan.covers(request[key]):
                outputs[key] = plan.shifted_graph(batch[key], request[key].roi)
        return outputs


class _Plan:
    """The section shifts of one request, on the grid of its total ROI (recomputed, never
    stored, so that several requests may be planned at once)."""

    def __init__(self, node: ShiftAugment, request: BatchRequest) -> None:
        specs, keys = planned_arrays(node, request, graphs=True)
        self.keys = keys
        self.axis = node.shift_axis
        self.shifts = None
        grid_keys = self.keys or list(specs)
        if not grid_keys:
            return
        self.lcm = node.spec.get_lcm_voxel_size(grid_keys)
        if self.lcm is None:
            raise BatchRequestError(
                f"{node.name()}: none of {grid_keys} has a voxel size upstream"
            )
        total_roi = None
        for key in grid_keys:
            roi = specs[key].roi
            total_roi = roi if total_roi is None else total_roi.union(roi)
        self.total_roi = total_roi
        if not total_roi.shape.is_multiple_of(self.lcm):
            raise BatchRequestError(
                f"{node.name()}: the total requested ROI {total_roi} is not a multiple of the "
                f"least common voxel size {self.lcm} of {grid_keys}"
            )
        for key in grid_keys:
            roi, step = specs[key].roi, self.lcm[self.axis]
            if (roi.begin[self.axis] - total_roi.begin[self.axis]) % step or roi.shape[
                self.axis
            ] % step:
                raise BatchRequestError(
                    f"{node.name()}: {key}'s ROI {roi} does not cover whole sections of the "
                    f"total ROI {total_roi} along shift_axis={self.axis} (sections are "
                    f"{step} thick, the least common voxel size)"
                )
        sections = total_roi.shape[self.axis] // self.lcm[self.axis]
        rng = node.rng(request, "shifts")
        draws = rng.random(sections)
        scales = np.array(node.sigmas) / np.array(self.lcm)
        offsets = np.rint(rng.normal(size=(sections, node.dims)) * scales).astype(np.int64)
        self.shifts = section_shifts(
            draws, offsets * np.array(self.lcm), node.prob_slip, node.prob_shift
        )

    def covers(self, spec) -> bool:
        """Whether an array with ``spec`` is shifted (its sections lie on the grid)."""
        if self.shifts is None or getattr(spec, "nonspatial", False) or spec.roi is None:
            return False
        roi, total = spec.roi, self.total_roi
        return (total.begin[self.axis] <= roi.begin[self.axis]
                and roi.end[self.axis] <= total.end[self.axis])

    def section_shifts(self, roi: Roi) -> np.ndarray:
        """The shifts (world units) of the sections that ``roi`` spans along the axis."""
        step = self.lcm[self.axis]
        first = (roi.begin[self.axis] - self.total_roi.begin[self.axis]) // step
        return self.shifts[first : first + roi.shape[self.axis] // step]

    def sections_of(self, roi: Roi) -> Roi:
        """``roi`` grown along the axis to whole sections (of the total ROI)."""
        step, origin = self.lcm[self.axis], self.total_roi.begin[self.axis]
        first = (roi.begin[self.axis] - origin) // step
        last = -((origin - roi.end[self.axis]) // step)
        begin, shape = list(roi.begin), list(roi.shape)
        begin[self.axis], shape[self.axis] = origin + first * step, (last - first) * step
        return Roi(begin, shape)

    def shifted_graph(self, graph, roi: Roi):
        """``graph`` with each node moved by the shift of its section (the content at
        ``x - shift`` shows at ``x``), with ROI ``roi``."""
        step, origin = self.lcm[self.axis], self.total_roi.begin[self.axis]
        locations = graph.locations.astype(np.float64)
        section = np.floor((locations[:, self.axis] - origin) / step).astype(np.int64)
        inside = (section >= 0) & (section < len(self.shifts))
        locations[inside] += self.shifts[section[inside]]
        return graph.with_locations(locations, roi)

    def upstream_roi(self, roi: Roi) -> Roi:
        """``roi`` grown to cover the upstream voxels its shifted sections show."""
        return ShiftAugment.compute_upstream_roi(roi, self.section_shifts(roi))

    def shifted(self, data: da.Array, upstream_roi: Roi, roi: Roi, voxel_size) -> da.Array:
        """``data`` (covering ``upstream_roi``) cut to ``roi``, each section at its shift."""
        voxel_size = Coordinate(voxel_size)
        shifts = self.section_shifts(roi)
        voxels_per_section = self.lcm[self.axis] // voxel_size[self.axis]
        shape = roi.shape // voxel_size
        channels = (slice(None),) * (data.ndim - roi.dims)
        axis = len(channels) + self.axis
        if len(np.unique(shifts, axis=0)) > 1:
            # Pieces cut at different offsets would have different chunk boundaries, and
            # concatenate would split every piece at the union of all of them (a graph
            # quadratic in the number of shifts): cut them from whole sections instead.
            data = data.rechunk({d: -1 for d in range(len(channels), data.ndim) if d != axis})
        pieces = []
        first = 0
        for last in range(1, len(shifts) + 1):
            if last < len(shifts) and np.array_equal(shifts[last], shifts[first]):
                continue
            # Output voxel x shows upstream voxel x - shift: slice upstream at the shift.
            begin = (roi.begin - Coordinate(shifts[first]) - upstream_roi.begin) // voxel_size
            index = [slice(b, b + s) for b, s in zip(begin, shape, strict=True)]
            index[self.axis] = slice(
                begin[self.axis] + first * voxels_per_section,
                begin[self.axis] + last * voxels_per_section,
            )
            pieces.append(data[channels + tuple(index)])
            first = last
        if len(pieces) == 1:
            return pieces[0]
        return da.concatenate(pieces, axis=axis)


def section_shifts(
    draws: np.ndarray, offsets: np.ndarray, prob_slip: float, prob_shift: float,
    inclusive: bool = False,
) -> np.ndarray:
    """Per-section shifts from one uniform draw and one offset per section (gunpowder's
    ``construct_global_shift_array``).

    Section ``i`` slips (it alone moves by ``offsets[i]``) when ``draws[i] < prob_slip``, or
    shifts (it and every following section move by ``offsets[i]``) when
    ``draws[i] < prob_slip + prob_shift`` (``<=`` both, gunpowder's rule, if ``inclusive``).

    Example:
        >>> section_shifts(np.array([0.9, 0.1, 0.9, 0.3, 0.9]),
        ...                np.array([[0, 9], [0, 1], [0, 9], [0, 5], [0, 9]]), 0.2, 0.2)[:, 1]
        array([0, 1, 0, 5, 5])
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    shifts = np.zeros_like(offsets)
    base = np.zeros(offsets.shape[1:], dtype=np.int64)
    below = np.less_equal if inclusive else np.less
    for i, draw in enumerate(draws):
        if below(draw, prob_slip):
            shifts[i] = base + offsets[i]
        elif below(draw, prob_slip + prob_shift):
            base = base + offsets[i]
            shifts[i] = base
        else:
            shifts[i] = base
    return shifts


__all__ = ["ShiftAugment"]
