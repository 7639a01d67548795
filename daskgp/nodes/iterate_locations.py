"""``IterateLocations``: centres batch after batch on the nodes of a graph."""

from __future__ import annotations

import dask.array as da
import numpy as np

from ..batch import Array, Batch
from ..errors import PipelineSetupError
from ..geometry import Roi
from ..graph import roi_mask
from ..graph_sampling import describe_source
from ..keys import ArrayKey, GraphKey
from ..locations import LocationFilter
from ..request import BatchRequest
from ..specs import ArraySpec, GraphSpec


class IterateLocations(LocationFilter):
    """Centre batches on the nodes of ``graph`` (those in ``roi``), one node per batch, in
    order (looping) or at random, as gunpowder's ``IterateLocations``.

    The nodes are fetched once at setup (graphs live in the driver). Differences from
    gunpowder: in order, batch ``i`` of a pipeline's seeded sequence takes node ``i`` (not a
    counter shared by all processes), random choices come from the request's seed; nodes
    whose batch would leave the upstream ROIs are skipped (at most 15 in a row).

    Args:
        graph (GraphKey): the graph whose nodes to visit.
        roi (Roi, optional): only visit nodes in this ROI (default: all provided).
        node_id (ArrayKey, optional): provide the id of the visited node here (nonspatial,
            int64, shape (1,)).
        choose_randomly (bool): draw nodes at random with replacement.

    Example:
        >>> points, raw = gp.GraphKey("POINTS"), ArrayKey("RAW")
        >>> graph = gp.Graph.from_arrays([7], [[5.5]], spec=GraphSpec(roi=Roi((0,), (10,))))
        >>> pipeline = ((gp.ArraySource(raw, np.arange(10)), gp.GraphSource(points, graph))
        ...             + gp.MergeProvider() + IterateLocations(points))
        >>> request = gp.BatchRequest()
        >>> request.add(raw, (2,))
        >>> with gp.build(pipeline, scheduler="sync") as p:
        ...     p.request_batch(request)[raw].data.tolist()
        [4, 5]
    """

    def __init__(self, graph: GraphKey, roi: Roi | None = None, node_id: ArrayKey | None = None,
                 choose_randomly: bool = False) -> None:
        self.graph = graph
        self.roi = roi
        self.node_id_key = node_id  # `node_id` is the seed id of every node
        self.choose_randomly = choose_randomly

    def setup(self) -> None:
        upstream = self.get_upstream_provider()
        if self.graph not in upstream.spec:
            raise PipelineSetupError(
                f"{self.name()}: {self.graph} is not provided upstream; upstream provides "
                f"{upstream.spec.keys()}"
            )
        roi = upstream.spec[self.graph].roi
        if self.roi is not None:
            roi = self.roi if roi is None else roi.intersect(self.roi)
        request = BatchRequest(random_seed=0)
        request[self.graph] = GraphSpec(roi=roi)
        graph = upstream.request_batch(request)[self.graph]
        inside = roi_mask(roi, graph.locations)
        self.ids, self.coordinates = graph.ids[inside], graph.locations[inside]
        if len(self.ids) == 0:
            raise PipelineSetupError(
                f"{self.name()}: {self.graph} has no node to iterate over in {roi} (from "
                f"{describe_source(upstream, self.graph)})"
            )
        super().setup()
        self._count = 0
        if self.node_id_key is not None:
            self.provides(self.node_id_key, ArraySpec(nonspatial=True, dtype=np.int64))

    def next_location(self, request: BatchRequest, attempt: int) -> np.ndarray:
        if self.choose_randomly:
            index = int(self.rng(request, "node", attempt).integers(len(self.ids)))
        else:
            if attempt == 0:
                self._start = self.sequence_index(request)
            index = (self._start + attempt) % len(self.ids)
        self._index = index
        return self.coordinates[index]

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        outputs = super().process(batch, request)
        if self.node_id_key is not None and self.node_id_key in request:
            value = np.array([self.ids[self.picked(request)]], dtype=np.int64)
            outputs[self.node_id_key] = Array(da.from_array(value, chunks=1),
                                          ArraySpec(nonspatial=True, dtype=np.int64))
        return outputs
