"""A spatial index over a graph's nodes: the subgraph in a ROI at a cost proportional to it.

Built once (a uniform grid of cells holding about ``points_per_cell`` nodes each, plus the
edges of each node), queried per request; no query ever touches all nodes.
"""

from __future__ import annotations

import numpy as np

from .geometry import Roi
from .graph import Graph, roi_mask
from .specs import GraphSpec

__all__ = ["GraphIndex"]


def _gather(starts: np.ndarray, order: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """The entries of ``order`` in the (CSR) bins ``bins``: ``order[starts[b]:starts[b+1]]``
    for each ``b``, concatenated."""
    begins, ends = starts[bins], starts[bins + 1]
    lengths = ends - begins
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=order.dtype)
    offsets = np.repeat(begins - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return order[offsets + np.arange(total)]


class GraphIndex:
    """The nodes of ``graph`` binned in a grid, and its edges binned by end point.

    Args:
        graph (Graph): the graph to index (kept, not copied).
        points_per_cell (int): the average occupancy the grid is sized for.

    Example:
        >>> g = Graph.from_arrays(np.arange(5), np.arange(10.0).reshape(5, 2), [[0, 1], [3, 4]])
        >>> sub = GraphIndex(g).subgraph(Roi((0, 0), (3, 3)))
        >>> sub.ids.tolist(), sub.edge_array.tolist()
        ([0, 1], [[0, 1]])
    """

    def __init__(self, graph: Graph, points_per_cell: int = 8) -> None:
        self.graph = graph
        locations = graph.locations.astype(np.float64)
        n = len(locations)
        dims = locations.shape[1] if locations.ndim == 2 else 0
        self.dims = dims
        if n == 0:
            self.low = np.zeros(dims)
            self.cell = np.ones(dims)
            self.counts = np.ones(dims, dtype=np.int64)
            self.order = np.zeros(0, np.int64)
            self.starts = np.zeros(2, np.int64)
        else:
            self.low = locations.min(axis=0)
            extent = locations.max(axis=0) - self.low
            spread = extent > 0
            cells_wanted = max(1.0, n / points_per_cell)
            if spread.any():
                side = (np.prod(extent[spread]) / cells_wanted) ** (1.0 / spread.sum())
                # Cap the cells per axis so a degenerate (thin) axis cannot blow up the grid.
                cell = np.where(spread, np.maximum(side, extent / max(cells_wanted, 1.0)), 1.0)
            else:
                cell = np.ones(dims)
            self.cell = cell
            self.counts = (np.floor(extent / cell).astype(np.int64) + 1)
            flat = self._flat(self._cells(locations))
            self.order = np.argsort(flat, kind="stable")
            self.starts = np.searchsorted(flat[self.order], np.arange(int(self.counts.prod()) + 1))
        self._index_edges()

    def _cells(self, points: np.ndarray) -> np.ndarray:
        cells = np.floor((points - self.low) / self.cell).astype(np.int64)
        return np.clip(cells, 0, self.counts - 1)

    def _flat(self, cells: np.ndarray) -> np.ndarray:
        return np.ravel_multi_index(tuple(cells.T), tuple(self.counts))

    def _index_edges(self) -> None:
        graph = self.graph
        edges = graph.edge_array
        self.edge_rows = np.zeros((0, 2), np.int64)
        self.edge_starts = np.zeros(len(graph.ids) + 1, np.int64)
        self.edge_order = np.zeros(0, np.int64)
        if len(edges) == 0:
            return
        id_order = np.argsort(graph.ids, kind="stable")
        sorted_ids = graph.ids[id_order]
        self.edge_rows = id_order[np.searchsorted(sorted_ids, edges)]
        ends = self.edge_rows.ravel()  # edge e has ends 2e and 2e + 1
        self.edge_order = np.argsort(ends, kind="stable") // 2
        self.edge_starts = np.searchsorted(np.sort(ends), np.arange(len(graph.ids) + 1))

    def rows_in(self, roi: Roi) -> np.ndarray:
        """Rows (ascending) of the nodes in ``roi``."""
        if len(self.order) == 0:
            return np.zeros(0, np.int64)
        begin = np.array([-np.inf if b is None else b for b in roi.begin], dtype=np.float64)
        end = np.array([np.inf if e is None else e for e in roi.end], dtype=np.float64)
        if np.any(end < self.low):
            return np.zeros(0, np.int64)
        first = self._cells(np.maximum(begin, self.low)[None])[0]
        last = self._cells(np.minimum(end, self.low + self.cell * self.counts)[None])[0]
        if np.any(last < first):
            return np.zeros(0, np.int64)
        # Cells that are neighbours along the last axis are neighbours in the sorted order:
        # gather one run of cells per row instead of cell by cell.
        axes = [np.arange(f, e + 1) for f, e in zip(first[:-1], last[:-1], strict=True)]
        rows = np.stack([a.ravel() for a in np.meshgrid(*axes, indexing="ij")], axis=1) if (
            axes) else np.zeros((1, 0), np.int64)
        run_first = self._flat(np.column_stack([rows, np.full(len(rows), first[-1])]))
        run_last = self._flat(np.column_stack([rows, np.full(len(rows), last[-1])]))
        run_starts = np.stack([self.starts[run_first], self.starts[run_last + 1]], axis=1)
        candidates = _gather(run_starts.ravel(), self.order, np.arange(0, 2 * len(rows), 2))
        inside = roi_mask(roi, self.graph.locations[candidates])
        return np.sort(candidates[inside])

    def edges_of(self, rows: np.ndarray) -> np.ndarray:
        """Indices (ascending, unique) of the edges with an end among ``rows``."""
        if len(self.edge_order) == 0 or len(rows) == 0:
            return np.zeros(0, np.int64)
        return np.unique(_gather(self.edge_starts, self.edge_order, rows))

    def subgraph(self, roi: Roi, spec: GraphSpec | None = None) -> Graph:
        """``graph.crop(roi)``, found through the index: the nodes in ``roi``, the edges with
        an end among them and the dangling nodes at their other ends."""
        graph = self.graph
        rows = self.rows_in(roi)
        edges = self.edges_of(rows)
        if len(edges):
            rows = np.union1d(rows, self.edge_rows[edges].ravel())
        ids = graph.ids[rows]
        node_attrs = {}
        if graph._node_attrs:
            node_attrs = {i: dict(graph._node_attrs[i]) for i in ids.tolist()
                          if graph._node_attrs.get(i)}
        edge_ids = graph.edge_array[edges]
        edge_attrs = {}
        if graph._edge_attrs:
            edge_attrs = {key: dict(graph._edge_attrs[key]) for key in map(tuple, edge_ids.tolist())
                          if graph._edge_attrs.get(key)}
        spec = (graph.spec if spec is None else spec).copy()
        spec.roi = roi
        return Graph.from_arrays(ids, graph.locations[rows], edge_ids, spec,
                                 graph.temporary_mask[rows], node_attrs, edge_attrs,
                                 validate=False)
