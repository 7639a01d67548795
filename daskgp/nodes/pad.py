"""``Pad``: grows the ROI provided for an array, filling the new border lazily.

Requests are clipped to the upstream ROI; the border is built with ``da.pad``.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
from dask.base import tokenize

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..keys import ArrayKey, GraphKey
from ..names import task_prefix
from ..provider import BatchFilter
from ..request import BatchRequest

MODES = ("constant", "reflect")


class Pad(BatchFilter):
    """Add a padding around an array, so that requests may reach beyond what upstream has.

    The ROI provided for ``key`` grows by ``size`` on both sides (or becomes unbounded). Each
    request is clipped to the upstream ROI on its way up; the part outside is filled lazily
    with ``da.pad``: with ``value`` (mode ``"constant"``), or by mirroring the data at the
    upstream ROI's faces (mode ``"reflect"``, numpy's ``reflect``: the face voxel is not
    repeated, and widths beyond the data reflect again, exactly as ``np.pad`` does on the
    whole upstream array). In reflect mode the upstream request also covers the voxels that
    are mirrored into the border, so the result never depends on where a request starts.

    Arguments in gunpowder's order: ``Pad(key, size, "reflect")`` sets the mode.

    Differences from gunpowder: ``mode="reflect"`` is new; ``size`` must be a multiple of the
    voxel size (a padding off the voxel grid could not be filled voxel by voxel). A graph key
    is padded as in gunpowder: its ROI grows, no node is added.

    Args:
        key (ArrayKey or GraphKey): the array (or graph) to pad.
        size (Coordinate or None): padding added on each side in world units; None pads
            without bounds.
        mode (str): ``"constant"`` or ``"reflect"``.
        value (scalar, optional): value of the padding in mode ``"constant"`` (default 0).

    Example:
        >>> raw = ArrayKey("RAW")
        >>> pipeline = gp.ArraySource(raw, np.arange(1, 5)) + gp.Pad(raw, Coordinate(2), value=9)
        >>> request = gp.BatchRequest()
        >>> request[raw] = ArraySpec(roi=Roi((-2,), (8,)))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data
        array([9, 9, 1, 2, 3, 4, 9, 9])
    """

    lazy = True

    def __init__(self, key: ArrayKey, size: Coordinate | None, mode: str = "constant",
                 value=None) -> None:
        if mode not in MODES:
            raise PipelineSetupError(
                f"{type(self).__name__}: mode={mode!r} for {key} is not one of {MODES}"
            )
        self.key = key
        self.size = None if size is None else Coordinate(size)
        self.value = value
        self.mode = mode

    def setup(self) -> None:
        self.enable_autoskip()
        spec = self.upstream_spec(self.key, "pad")
        if isinstance(self.key, GraphKey):
            spec.roi = (Roi((None,) * spec.roi.dims, (None,) * spec.roi.dims)
                        if self.size is None else spec.roi.grow(self.size, self.size))
            self.updates(self.key, spec)
            return
        if spec.roi is None or spec.nonspatial:
            raise PipelineSetupError(
                f"{self.name()}: asked to pad {self.key}, which has no ROI upstream ({spec})"
            )
        if self.size is None:
            spec.roi = Roi((None,) * spec.roi.dims, (None,) * spec.roi.dims)
        else:
            if spec.voxel_size is not None and not self.size.is_multiple_of(spec.voxel_size):
                raise PipelineSetupError(
                    f"{self.name()}: padding size {self.size} of {self.key} is not a multiple "
                    f"of its voxel size {spec.voxel_size}"
                )
            spec.roi = spec.roi.grow(self.size, self.size)
        self.updates(self.key, spec)

    def prepare(self, request: BatchRequest) -> BatchRequest | None:
        if self.key not in request:
            return None
        upstream_roi = self.get_upstream_provider().spec[self.key].roi
        if isinstance(self.key, GraphKey):
            roi = request[self.key].roi.intersect(upstream_roi)
            request[self.key].roi = roi if not roi.empty else Roi(upstream_roi.begin,
                                                                  (0,) * roi.dims)
            return request
        voxel_size = self.spec[self.key].voxel_size
        # Changed in place and returned, like gunpowder: BatchFilter unions the returned
        # ROIs with the request's, which is then this same (clipped) request.
        request[self.key].roi = _fetch_roi(request[self.key].roi, upstream_roi, voxel_size,
                                           self.mode)
        return request

    def process(self, batch: Batch, request: BatchRequest) -> Batch | None:
        if self.key in request and self.key in batch.graphs:
            graph = batch[self.key].copy()
            graph.spec.roi = request[self.key].roi  # nothing to fill: no node in the padding
            return _single(self.key, graph)
        if self.key not in request or self.key not in batch.arrays:
            return None
        array = batch[self.key]
        roi = request[self.key].roi
        voxel_size = array.spec.voxel_size
        channels = array.data.ndim - roi.dims
        shape = tuple(int(s) for s in roi.shape / voxel_size)
        name = f"{task_prefix(self.name())}-{tokenize(array.data.name, str(roi), self.value)}"
        spec = array.spec.copy()
        spec.roi = roi
        if self.mode == "constant" and not roi.intersects(array.spec.roi):
            # Entirely outside upstream (constant mode): only the channel shape is used.
            data = da.full(array.data.shape[:channels] + shape, self._value(array),
                           dtype=array.data.dtype, chunks=-1, name=name)
            return _single(self.key, Array(data, spec, array.attrs))
        fetched = array.spec.roi
        before = (roi.begin - fetched.begin) / voxel_size
        after = (roi.end - fetched.end) / voxel_size
        widths = [(0, 0)] * channels + [(max(0, -b), max(0, a)) for b, a in zip(before, after,
                                                                              strict=True)]
        data = array.data
        if self.mode == "constant":
            data = da.pad(data, widths, mode="constant", constant_values=self._value(array))
        else:
            data = _reflect(data, widths)
        # Reflect mode may have fetched more than requested (the mirrored voxels).
        crop = tuple(slice(max(0, int(b)), max(0, int(b)) + s) for b, s in zip(before, shape,
                                                                               strict=True))
        data = data[(slice(None),) * channels + crop]
        return _single(self.key, Array(data, spec, array.attrs))

    def _value(self, array: Array):
        return np.asarray(self.value if self.value else 0).astype(array.data.dtype)


def _single(key, array: Array) -> Batch:
    batch = Batch()
    batch[key] = array
    return batch


def _reflect(data, widths: list[tuple[int, int]]):
    """``np.pad(data, widths, mode="reflect")`` with ``da.pad``.

    ``da.pad`` only reflects less than an axis' length. Wider borders are padded in steps
    that each move the edge by a multiple of ``length - 1``, so the edge stays on a mirror
    plane of numpy's (periodic) reflection and each step continues it exactly.
    """
    periods = [max(n - 1, 0) for n in data.shape]
    remaining = [list(w) for w in widths]
    while any(b or a for b, a in remaining):
        step = []
        for axis, (b, a) in enumerate(remaining):
            period, reach = periods[axis], data.shape[axis] - 1
            longest = reach if period == 0 else reach // period * period
            step.append(tuple(w if w <= reach else longest for w in (b, a)))
            remaining[axis] = [b - step[-1][0], a - step[-1][1]]
        if all(b == 0 and a == 0 for b, a in step):
            # Axes of length 1: numpy repeats the single value.
            return da.pad(data, [tuple(w) for w in remaining], mode="edge")
        data = da.pad(data, step, mode="reflect")
    return data


def _fetch_roi(roi: Roi, upstream_roi: Roi, voxel_size: Coordinate, mode: str) -> Roi:
    """The part of ``upstream_roi`` needed to fill ``roi`` (world units).

    Constant mode needs the intersection; if there is none, one voxel at the nearest face
    (its channel shape is all ``process`` uses). Reflect mode needs every voxel that is
    mirrored into ``roi`` and the face it mirrors at; where the border is wider than the
    data, the whole upstream extent in that dimension.
    """
    if mode == "constant" and not roi.intersects(upstream_roi):
        return Roi(_nearest_voxel(roi.begin, upstream_roi, voxel_size), voxel_size)
    begin, end = [], []
    for d in range(roi.dims):
        step, low, high = voxel_size[d], upstream_roi.begin[d], upstream_roi.end[d]
        # Voxel indices relative to the upstream face (or to the request if unbounded).
        origin = low if low is not None else roi.begin[d]
        first, last = (roi.begin[d] - origin) // step, (roi.end[d] - origin) // step
        start = None if low is None else 0
        stop = None if high is None else (high - origin) // step
        if mode == "constant":
            a = first if start is None else max(first, start)
            b = last if stop is None else min(last, stop)
        else:
            index = _mirror(np.arange(first, last), start, stop)
            a, b = int(index.min()), int(index.max()) + 1
            if start is not None and first < start:
                a = start
            if stop is not None and last > stop:
                b = stop
            if start is not None and stop is not None:
                # Wider than the data: da.pad reflects the padded array again, which needs
                # all of it (at most the upstream extent, which is narrower than the pad).
                widest = max(start - first, last - stop)
                if widest > stop - start - 1:
                    a, b = start, stop
        begin.append(origin + a * step)
        end.append(origin + b * step)
    return Roi(begin, tuple(e - b for b, e in zip(begin, end, strict=True)))


def _mirror(index: np.ndarray, start: int | None, stop: int | None) -> np.ndarray:
    """numpy's ``reflect`` index map into ``[start, stop)``; None is unbounded."""
    if start is not None and stop is not None:
        length = stop - start
        if length == 1:
            return np.full_like(index, start)
        period = 2 * (length - 1)
        offset = np.mod(index - start, period)
        return start + np.where(offset < length, offset, period - offset)
    if start is not None:
        return np.where(index < start, 2 * start - index, index)
    if stop is not None:
        return np.where(index >= stop, 2 * (stop - 1) - index, index)
    return index


def _nearest_voxel(point: Coordinate, roi: Roi, voxel_size: Coordinate) -> Coordinate:
    """The begin of the voxel of ``roi`` nearest to ``point`` (unbounded sides keep it)."""
    nearest = []
    for d, p in enumerate(point):
        low, high = roi.begin[d], roi.end[d]
        if low is not None:
            p = max(p, low)
        if high is not None:
            p = min(p, high - voxel_size[d])
        nearest.append(p)
    return Coordinate(nearest)
