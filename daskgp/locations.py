"""Placing requests at given locations: the machinery shared by ``IterateLocations`` and
``SpecifiedLocation`` (a location per request, shifted onto the voxel grid, checked to fit).

Planning only: the upstream data is relabelled with the requested ROIs (graphs shifted back).
"""

from __future__ import annotations

import numpy as np

from .batch import Array, Batch
from .errors import PipelineRequestError
from .geometry import Coordinate, Roi
from .keys import GraphKey
from .provider import BatchFilter
from .request import BatchRequest

__all__ = ["LocationFilter", "relabel_shifted"]


def relabel_shifted(batch: Batch, request: BatchRequest, keys) -> Batch:
    """The arrays and graphs ``keys`` of ``batch`` (fetched at shifted ROIs) with the ROIs of
    ``request``: arrays keep their data, graph nodes move back by the shift."""
    outputs = Batch()
    for key in keys:
        if key not in batch:
            continue
        item = batch[key]
        if isinstance(key, GraphKey):
            graph = item.copy()
            graph.shift(request[key].roi.begin - graph.spec.roi.begin)
            graph.spec.roi = request[key].roi
            outputs[key] = graph
        else:
            spec = item.spec.copy()
            spec.roi = request[key].roi
            outputs[key] = Array(item.data, spec, item.attrs)
    return outputs


class LocationFilter(BatchFilter):
    """Centres each request on a location chosen by ``next_location(request, attempt)``.

    The shift moves the centre of the total requested ROI onto the location, rounded to the
    lcm voxel size; a shift that puts a requested ROI outside its upstream ROI costs an
    attempt (at most ``max_attempts``, then a ``PipelineRequestError``). Downstream, every
    spatial key is provided with an unbounded ROI.
    """

    lazy = True
    max_attempts: int = 15

    def next_location(self, request: BatchRequest, attempt: int) -> np.ndarray:
        """The location (world units) to try for ``request`` at ``attempt``; may set
        ``self._index``, which ``picked(request)`` returns in ``process``."""
        raise NotImplementedError

    def picked(self, request: BatchRequest):
        """The ``_index`` recorded when ``request``'s location was chosen."""
        return self.__dict__.get("_picks", {}).get(request.random_seed)

    def sequence_index(self, request: BatchRequest) -> int:
        """Batch ``i`` of a pipeline's seeded sequence is ``i``; other requests count up."""
        sequence = request.sequence
        if sequence is not None:
            return sequence[1]
        count = self.__dict__.get("_count", 0)
        self._count = count + 1
        return count

    def setup(self) -> None:
        for key, spec in self.get_upstream_provider().spec.items():
            if spec.roi is None or getattr(spec, "nonspatial", False):
                continue
            spec = spec.copy()
            spec.roi = Roi((None,) * spec.roi.dims, (None,) * spec.roi.dims)
            self.updates(key, spec)

    def _spatial_keys(self, request: BatchRequest) -> list:
        upstream = self.get_upstream_provider().spec
        return [key for key, spec in request.items()
                if spec.roi is not None and not getattr(spec, "nonspatial", False)
                and key in upstream and not getattr(upstream[key], "nonspatial", False)]

    def _fits(self, request: BatchRequest, keys: list, shift: Coordinate) -> bool:
        upstream = self.get_upstream_provider().spec
        return all(upstream[key].roi.contains(request[key].roi.shift(shift)) for key in keys)

    def prepare(self, request: BatchRequest) -> BatchRequest:
        keys = self._spatial_keys(request)
        if not keys:
            raise PipelineRequestError(f"{self.name()}: nothing spatial is requested:\n{request}")
        total = request.get_total_roi()
        arrays = [k for k in keys if not isinstance(k, GraphKey)]
        lcm = self.spec.get_lcm_voxel_size(arrays) or Coordinate((1,) * total.dims)
        center = np.array(total.begin) + np.array(total.shape) / 2
        tried = []
        for attempt in range(self.max_attempts):
            location = np.asarray(self.next_location(request, attempt), dtype=np.float64)
            offset = (location - center) / np.array(lcm)
            shift = Coordinate(int(v * round(float(o))) for v, o in zip(lcm, offset,
                                                                         strict=True))
            if self._fits(request, keys, shift):
                for key in keys:
                    request[key].roi = request[key].roi.shift(shift)
                self.__dict__.setdefault("_picks", {})[request.random_seed] = (
                    self.__dict__.get("_index"))
                return request
            tried.append(location.tolist())
        upstream = self.get_upstream_provider().spec
        rois = "\n".join(f"\t{k}: requested {request[k].roi}, upstream {upstream[k].roi}"
                         for k in keys)
        raise PipelineRequestError(
            f"{self.name()}: none of the {len(tried)} locations tried ({tried[:5]}...) puts "
            f"every requested ROI inside its upstream ROI:\n{rois}"
        )

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        return relabel_shifted(batch, request, self._spatial_keys(request))
