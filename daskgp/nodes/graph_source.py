"""``GraphSource`` (gunpowder's ``GPGraphSource``): serves an in-memory graph, by ROI.

The graph is indexed once at setup; each request costs what the points in its ROI cost.
"""

from __future__ import annotations

import numpy as np

from ..batch import Batch
from ..errors import PipelineSetupError
from ..geometry import Coordinate, Roi
from ..graph import Graph
from ..graph_index import GraphIndex
from ..keys import GraphKey
from ..provider import BatchProvider
from ..request import BatchRequest
from ..specs import GraphSpec


def bounding_roi(locations: np.ndarray) -> Roi:
    """gunpowder's ROI of a point set: ``floor(min)`` to ``ceil(max) + 1`` per axis.

    Example:
        >>> bounding_roi(np.array([[0.5, 2.0], [3.0, 4.2]]))
        [0:4, 2:6] (4, 4)
    """
    low = Coordinate(int(v) for v in np.floor(locations.min(axis=0)))
    high = Coordinate(int(v) for v in np.ceil(locations.max(axis=0)) + 1)
    return Roi(low, high - low)


class GraphSource(BatchProvider):
    """Provide ``graph`` under ``key``: for each request, the nodes in its ROI, the edges
    with an end among them and the (dangling) nodes at their other ends, as ``Graph.crop``.

    A materialization boundary in the sense of DESIGN section 5: graphs live in the driver.
    The nodes are binned in a grid at setup (``GraphIndex``), so a request never scans all
    of them.

    Args:
        key (GraphKey): the key to provide.
        graph (Graph): the graph; its spec's ROI (or, if None, the bounding box of its nodes,
            as ``CsvPointsSource`` computes it) is the provided ROI.
        graph_spec (GraphSpec, optional): overrides the provided spec (e.g. its ROI).

    Example:
        >>> points = GraphKey("POINTS")
        >>> graph = Graph.from_arrays([1, 2], [[1.0, 1.0], [8.0, 8.0]])
        >>> request = BatchRequest()
        >>> request[points] = GraphSpec(roi=Roi((1, 1), (4, 4)))
        >>> with gp.build(GraphSource(points, graph)) as p:
        ...     p.request_batch(request)[points].ids.tolist()
        [1]
    """

    lazy = True

    def __init__(self, key: GraphKey, graph: Graph, graph_spec: GraphSpec | None = None) -> None:
        if not isinstance(graph, Graph):
            raise PipelineSetupError(
                f"GraphSource: {key} needs a daskgp Graph, got {type(graph).__name__}"
            )
        self.key = key
        self.graph = graph
        self.graph_spec = graph_spec

    def setup(self) -> None:
        spec = self.graph.spec.copy() if self.graph_spec is None else self.graph_spec.copy()
        if spec.roi is None:
            if self.graph.num_vertices() == 0:
                raise PipelineSetupError(
                    f"{self.name()}: {self.key} is an empty graph without a ROI; give it a "
                    "GraphSpec with a ROI"
                )
            spec.roi = bounding_roi(self.graph.locations)
        self._index = GraphIndex(self.graph)
        self.provides(self.key, spec)

    def provide(self, request: BatchRequest) -> Batch:
        batch = Batch()
        for key, spec in request.graph_specs.items():
            provided = self.spec[key].copy()
            if spec.directed is not None:
                provided.directed = spec.directed
            batch[key] = self._index.subgraph(spec.roi, provided)
        return batch


#: gunpowder's name for the in-memory graph source.
GPGraphSource = GraphSource
