"""Graphs (points, skeletons) with gunpowder's ``Graph``/``Node``/``Edge`` API, numpy-backed.

A ``Graph`` keeps one ``(N,)`` id array, one ``(N, dims)`` location array and one ``(M, 2)``
edge array; ``Node``/``Edge`` objects are made only when a user iterates or asks for one.
"""

from __future__ import annotations

import copy as _copy
import itertools
from collections.abc import Iterable, Iterator

import numpy as np

from .errors import DaskgpError
from .geometry import Roi
from .keys import GraphKey, GraphKeys
from .specs import GraphSpec

__all__ = ["Edge", "Graph", "GraphError", "GraphKey", "GraphKeys", "GraphSpec", "Node",
           "join_parts", "roi_mask"]


class GraphError(DaskgpError):
    """A graph is malformed (duplicate ids, edges to missing nodes, wrong dimensions)."""


def roi_mask(roi: Roi | None, locations: np.ndarray) -> np.ndarray:
    """Which rows of ``locations`` ``(N, dims)`` lie in ``roi`` (``begin <= x < end``; None
    sides are unbounded), as ``Roi.contains`` decides for one point.

    Example:
        >>> roi_mask(Roi((0, 0), (10, None)), np.array([[0, 5], [10, 5], [3, -1e9]])).tolist()
        [True, False, True]
    """
    locations = np.asarray(locations)
    inside = np.ones(len(locations), dtype=bool)
    if roi is None:
        return inside
    for d in range(roi.dims):
        if roi.begin[d] is not None:
            inside &= locations[:, d] >= roi.begin[d]
        if roi.end[d] is not None:
            inside &= locations[:, d] < roi.end[d]
    return inside


class Node:
    """A node of a graph: an id, a location (world units) and free-form attributes.

    Attributes are also readable as attributes of the node (``node.radius``), as in
    gunpowder. A node obtained from a graph (``graph.node(id)``, ``graph.nodes``) writes
    ``node.location = ...`` and in-place changes of ``node.location`` through to the graph.

    Args:
        id (int): unique within its graph.
        location (numpy.ndarray): world coordinates.
        temporary (bool): made by an operation (``trim``), not present in the source.
        attrs (dict, optional): further attributes.

    Example:
        >>> node = Node(3, np.array([1.0, 2.0]), attrs={"radius": 2})
        >>> node.id, node.radius, node.temporary, node.original_id
        (3, 2, False, 3)
    """

    __slots__ = ("_attrs", "_graph", "_id", "_location", "_temporary")

    def __init__(self, id: int, location: np.ndarray, temporary: bool = False,
                 attrs: dict | None = None) -> None:
        attrs = {} if attrs is None else dict(attrs)
        for reserved in ("id", "location", "temporary"):
            attrs.pop(reserved, None)
        object.__setattr__(self, "_id", int(id))
        object.__setattr__(self, "_location", np.asarray(location))
        object.__setattr__(self, "_temporary", bool(temporary))
        object.__setattr__(self, "_attrs", attrs)
        object.__setattr__(self, "_graph", None)

    @classmethod
    def from_attrs(cls, attrs: dict) -> Node:
        """A node from gunpowder's flat attribute dict (``id``, ``location``, ...)."""
        return cls(attrs["id"], attrs["location"], attrs.get("temporary", False), attrs)

    @property
    def id(self) -> int:
        """The node's id."""
        return self._id

    @property
    def location(self) -> np.ndarray:
        """World coordinates (a view into the graph's location array for a graph's node)."""
        if self._graph is not None:
            return self._graph._locations[self._graph._row(self._id)]
        return self._location

    @location.setter
    def location(self, location: np.ndarray) -> None:
        if self._graph is not None:
            self._graph._locations[self._graph._row(self._id)] = location
        else:
            object.__setattr__(self, "_location", np.asarray(location))

    @property
    def temporary(self) -> bool:
        """Whether an operation made this node (it has no counterpart in the source)."""
        return self._temporary

    @property
    def original_id(self) -> int | None:
        """The id in the source, None for temporary nodes."""
        return None if self._temporary else self._id

    @property
    def attrs(self) -> dict:
        """Further attributes (mutable; a graph's node writes through)."""
        return self._attrs

    @property
    def all(self) -> dict:
        """gunpowder's flat dict: the attributes with ``id``, ``location`` and ``temporary``."""
        return {**self._attrs, "id": self.id, "location": self.location,
                "temporary": self.temporary}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._attrs[name]
        except KeyError:
            raise AttributeError(f"node {self._id} has no attribute {name!r}") from None

    def __setattr__(self, name: str, value) -> None:
        if name == "location":
            Node.location.fset(self, value)
        elif name.startswith("_") or name in ("id", "temporary", "original_id", "attrs"):
            raise AttributeError(f"cannot set {name} of node {self._id}")
        else:
            self._attrs[name] = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Node({self.temporary}) ({self.id}) at ({self.location})"


class Edge:
    """An edge between the nodes with ids ``u`` and ``v``.

    Example:
        >>> list(Edge(1, 2)), Edge(1, 2) == Edge(1, 2)
        ([1, 2], True)
    """

    __slots__ = ("attrs", "u", "v")

    def __init__(self, u: int, v: int, attrs: dict | None = None) -> None:
        self.u = int(u)
        self.v = int(v)
        self.attrs = {} if attrs is None else attrs

    @property
    def all(self) -> dict:
        """The edge's attributes."""
        return self.attrs

    def __iter__(self) -> Iterator[int]:
        return iter((self.u, self.v))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Edge) and (self.u, self.v) == (other.u, other.v)

    def __hash__(self) -> int:
        return hash((self.u, self.v))

    def directed_eq(self, other: Edge) -> bool:
        """Same (u, v) in this order."""
        return (self.u, self.v) == (other.u, other.v)

    def undirected_eq(self, other: Edge) -> bool:
        """Same end points in any order."""
        return {self.u, self.v} == {other.u, other.v}

    def __repr__(self) -> str:
        return f"({self.u}, {self.v})"


class Graph:
    """Nodes and edges with a ``GraphSpec``, as gunpowder's ``Graph``, stored as numpy arrays.

    ``ids`` ``(N,)``, ``locations`` ``(N, dims)`` (``spec.dtype``) and ``edge_array``
    ``(M, 2)`` are the arrays every daskgp node works on (vectorized: cost per point, not per
    Python object); ``nodes``, ``edges``, ``node(id)`` and friends make gunpowder's objects on
    demand. Attributes of nodes and edges are kept in dicts only for the nodes and edges that
    have any.

    Args:
        nodes (iterable of Node): the nodes.
        edges (iterable of Edge): edges between their ids.
        spec (GraphSpec): ROI, ``directed`` (None: directed, gunpowder's default), dtype.

    Example:
        >>> spec = GraphSpec(roi=Roi((0, 0), (10, 10)))
        >>> g = Graph([Node(1, np.array([1, 1])), Node(2, np.array([15, 1]))], [Edge(1, 2)], spec)
        >>> sorted(n.id for n in g.crop(Roi((0, 0), (5, 5))).nodes)  # 2 dangles on the edge
        [1, 2]
        >>> [(n.id, n.temporary) for n in g.trim(Roi((0, 0), (5, 5))).nodes]  # 3 on the face
        [(1, False), (3, True)]
    """

    def __init__(self, nodes: Iterable[Node] = (), edges: Iterable[Edge] = (),
                 spec: GraphSpec | None = None) -> None:
        spec = GraphSpec() if spec is None else spec
        nodes = list(nodes)
        edges = list(edges)
        dims = spec.roi.dims if spec.roi is not None else (
            len(nodes[0].location) if nodes else 0)
        ids = np.array([n.id for n in nodes], dtype=np.int64)
        locations = np.array([np.asarray(n.location, dtype=spec.dtype) for n in nodes],
                             dtype=spec.dtype).reshape(len(nodes), dims)
        temporary = np.array([n.temporary for n in nodes], dtype=bool)
        edge_array = np.array([(e.u, e.v) for e in edges], dtype=np.int64).reshape(-1, 2)
        node_attrs = {n.id: dict(n.attrs) for n in nodes if n.attrs}
        edge_attrs = {(e.u, e.v): dict(e.attrs) for e in edges if e.attrs}
        self._set(ids, locations, temporary, edge_array, node_attrs, edge_attrs, spec)

    @classmethod
    def from_arrays(cls, ids, locations, edges=None, spec: GraphSpec | None = None,
                    temporary=None, node_attrs: dict | None = None,
                    edge_attrs: dict | None = None, validate: bool = True) -> Graph:
        """A graph from ``ids`` ``(N,)``, ``locations`` ``(N, dims)`` and ``edges`` ``(M, 2)``
        (ids of end points); the arrays are used as they are, without copies where possible.

        Example:
            >>> g = Graph.from_arrays([5, 6], [[0.0, 1.0], [2.0, 3.0]], [[5, 6]])
            >>> g.num_vertices(), g.num_edges(), g.node(6).location.tolist()
            (2, 1, [2.0, 3.0])
        """
        spec = GraphSpec() if spec is None else spec
        graph = cls.__new__(cls)
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        locations = np.asarray(locations, dtype=spec.dtype)
        locations = locations.reshape(len(ids), -1) if locations.size or len(ids) else (
            locations.reshape(0, spec.roi.dims if spec.roi is not None else 0))
        edges = np.zeros((0, 2), np.int64) if edges is None else np.asarray(
            edges, dtype=np.int64).reshape(-1, 2)
        temporary = np.zeros(len(ids), bool) if temporary is None else np.asarray(
            temporary, dtype=bool)
        graph._set(ids, locations, temporary, edges, dict(node_attrs or {}),
                   dict(edge_attrs or {}), spec)
        if validate:
            graph.validate()
        return graph

    def _set(self, ids, locations, temporary, edge_array, node_attrs, edge_attrs, spec) -> None:
        self._ids = ids
        self._locations = locations
        self._temporary = temporary
        self._edges = edge_array
        self._node_attrs = node_attrs
        self._edge_attrs = edge_attrs
        self._spec = spec
        self._rows = None

    def validate(self) -> None:
        """Raise ``GraphError`` for duplicate ids, edges to missing nodes or wrong shapes."""
        if self._locations.shape[0] != len(self._ids) or len(self._temporary) != len(self._ids):
            raise GraphError(
                f"graph has {len(self._ids)} ids but locations of shape "
                f"{self._locations.shape} and {len(self._temporary)} temporary flags"
            )
        if self._spec.roi is not None and len(self._ids) and (
                self._locations.shape[1] != self._spec.roi.dims):
            raise GraphError(
                f"graph locations have {self._locations.shape[1]} dimensions, its ROI "
                f"{self._spec.roi} has {self._spec.roi.dims}"
            )
        unique, counts = np.unique(self._ids, return_counts=True)
        if np.any(counts > 1):
            raise GraphError(f"graph has duplicate node ids {unique[counts > 1][:10].tolist()}")
        missing = ~np.isin(self._edges, self._ids)
        if missing.any():
            raise GraphError(
                f"graph has edges to missing nodes {np.unique(self._edges[missing])[:10].tolist()}"
            )

    # --- numpy views ---------------------------------------------------------------------------

    @property
    def ids(self) -> np.ndarray:
        """Node ids, ``(N,)`` int64."""
        return self._ids

    @property
    def locations(self) -> np.ndarray:
        """Node locations in world units, ``(N, dims)`` of ``spec.dtype`` (row i: ``ids[i]``)."""
        return self._locations

    @property
    def temporary_mask(self) -> np.ndarray:
        """Which nodes are temporary, ``(N,)`` bool."""
        return self._temporary

    @property
    def edge_array(self) -> np.ndarray:
        """Edges as ``(M, 2)`` int64 node ids."""
        return self._edges

    def _row(self, node_id: int) -> int:
        if self._rows is None:
            self._rows = {int(i): r for r, i in enumerate(self._ids)}
        try:
            return self._rows[int(node_id)]
        except KeyError:
            raise KeyError(f"graph has no node with id {node_id}") from None

    # --- gunpowder's API -------------------------------------------------------------------

    @property
    def spec(self) -> GraphSpec:
        """ROI, directedness and dtype of the graph."""
        return self._spec

    @spec.setter
    def spec(self, spec: GraphSpec) -> None:
        self._spec = spec

    @property
    def directed(self) -> bool:
        """``spec.directed``, or True (gunpowder's default) when the spec does not say."""
        return True if self._spec.directed is None else bool(self._spec.directed)

    @property
    def nodes(self) -> Iterator[Node]:
        """The nodes (made on demand; they write location and attribute changes through)."""
        for r in range(len(self._ids)):
            yield self._bound_node(r)

    def _bound_node(self, row: int) -> Node:
        node_id = int(self._ids[row])
        node = Node.__new__(Node)
        object.__setattr__(node, "_id", node_id)
        object.__setattr__(node, "_location", None)
        object.__setattr__(node, "_temporary", bool(self._temporary[row]))
        object.__setattr__(node, "_attrs", self._node_attrs.setdefault(node_id, {}))
        object.__setattr__(node, "_graph", self)
        return node

    @property
    def edges(self) -> Iterator[Edge]:
        """The edges."""
        for u, v in self._edges.tolist():
            yield Edge(u, v, self._edge_attrs.setdefault((u, v), {}))

    def num_vertices(self) -> int:
        """Number of nodes."""
        return len(self._ids)

    def num_edges(self) -> int:
        """Number of edges."""
        return len(self._edges)

    def __len__(self) -> int:
        return len(self._ids)

    def node(self, id: int) -> Node:
        """The node with id ``id`` (KeyError if none)."""
        return self._bound_node(self._row(id))

    def edge(self, id: tuple[int, int]) -> Edge:
        """The edge ``(u, v)``."""
        u, v = (int(i) for i in id)
        if not np.any((self._edges[:, 0] == u) & (self._edges[:, 1] == v)):
            raise KeyError(f"graph has no edge {(u, v)}")
        return Edge(u, v, self._edge_attrs.setdefault((u, v), {}))

    def contains(self, node_id: int) -> bool:
        """Whether a node with this id is in the graph."""
        return bool(np.any(self._ids == int(node_id)))

    def __contains__(self, node) -> bool:
        return self.contains(node.id if isinstance(node, Node) else node)

    def add_node(self, node: Node) -> None:
        """Add ``node``; a node with the same id is overwritten, as in gunpowder."""
        location = np.asarray(node.location, dtype=self._spec.dtype).reshape(1, -1)
        if self.contains(node.id):
            row = self._row(node.id)
            self._locations[row] = location[0]
            self._temporary[row] = node.temporary
        else:
            if len(self._ids) and location.shape[1] != self._locations.shape[1]:
                raise GraphError(
                    f"node {node.id} at {node.location} has {location.shape[1]} dimensions, "
                    f"the graph's locations have {self._locations.shape[1]}"
                )
            self._ids = np.append(self._ids, np.int64(node.id))
            self._locations = np.concatenate([self._locations.reshape(-1, location.shape[1]),
                                              location])
            self._temporary = np.append(self._temporary, bool(node.temporary))
            self._rows = None
        self._node_attrs[node.id] = dict(node.attrs)

    def add_edge(self, edge: Edge) -> None:
        """Add ``edge`` (overwriting the attributes of an equal one)."""
        for end in (edge.u, edge.v):
            if not self.contains(end):
                raise GraphError(f"cannot add edge {edge}: the graph has no node {end}")
        if not np.any((self._edges[:, 0] == edge.u) & (self._edges[:, 1] == edge.v)):
            self._edges = np.concatenate([self._edges, [[edge.u, edge.v]]]).astype(np.int64)
        if edge.attrs:
            self._edge_attrs[(edge.u, edge.v)] = dict(edge.attrs)

    def remove_edge(self, edge: Edge) -> None:
        """Remove ``edge``."""
        keep = ~((self._edges[:, 0] == edge.u) & (self._edges[:, 1] == edge.v))
        if not self.directed:
            keep &= ~((self._edges[:, 0] == edge.v) & (self._edges[:, 1] == edge.u))
        self._edges = self._edges[keep]
        self._edge_attrs.pop((edge.u, edge.v), None)

    def remove_node(self, node: Node, retain_connectivity: bool = False) -> None:
        """Remove ``node`` and its edges; with ``retain_connectivity``, connect each of its
        predecessors to each of its successors first (``a->b->c`` becomes ``a->c``)."""
        node_id = node.id if isinstance(node, Node) else int(node)
        if retain_connectivity:
            predecessors = list(self._predecessor_ids(node_id))
            successors = list(self._successor_ids(node_id))
            for p in predecessors:
                for s in successors:
                    if p != s:
                        self.add_edge(Edge(p, s))
        self._take(self._ids != node_id)
        self._node_attrs.pop(node_id, None)

    def _successor_ids(self, node_id: int) -> Iterator[int]:
        yield from self._edges[self._edges[:, 0] == node_id, 1].tolist()
        if not self.directed:
            yield from self._edges[self._edges[:, 1] == node_id, 0].tolist()

    def _predecessor_ids(self, node_id: int) -> Iterator[int]:
        yield from self._edges[self._edges[:, 1] == node_id, 0].tolist()
        if not self.directed:
            yield from self._edges[self._edges[:, 0] == node_id, 1].tolist()

    def successors(self, node: Node) -> Iterator[int]:
        """Ids of the successors (undirected: neighbours) of ``node``."""
        return self._successor_ids(node.id)

    def predecessors(self, node: Node) -> Iterator[int]:
        """Ids of the predecessors (undirected: neighbours) of ``node``."""
        return self._predecessor_ids(node.id)

    def neighbors(self, node: Node) -> Iterator[Node]:
        """Nodes sharing an edge with ``node`` (successors, then predecessors)."""
        ids = dict.fromkeys(itertools.chain(self._successor_ids(node.id),
                                            self._predecessor_ids(node.id)))
        for i in ids:
            yield self.node(i)

    def in_degree(self) -> dict[int, int]:
        """``{node id: number of incoming edges}``."""
        counts = dict.fromkeys(self._ids.tolist(), 0)
        for v in self._edges[:, 1].tolist():
            counts[v] += 1
        return counts

    def copy(self) -> Graph:
        """A deep copy."""
        graph = Graph.__new__(Graph)
        graph._set(self._ids.copy(), self._locations.copy(), self._temporary.copy(),
                   self._edges.copy(), _copy.deepcopy(self._node_attrs),
                   _copy.deepcopy(self._edge_attrs), self._spec.copy())
        return graph

    def _take(self, keep: np.ndarray, edges_keep: np.ndarray | None = None) -> None:
        """Keep the rows ``keep`` (bool) of the nodes, and the edges among the kept nodes (or
        the edges ``edges_keep``)."""
        kept_ids = self._ids[keep]
        removed = self._ids[~keep]
        self._ids = kept_ids
        self._locations = self._locations[keep]
        self._temporary = self._temporary[keep]
        if edges_keep is None:
            edges_keep = np.isin(self._edges, kept_ids).all(axis=1)
        self._edges = self._edges[edges_keep]
        if self._node_attrs and len(removed):
            for i in removed.tolist():
                self._node_attrs.pop(i, None)
        if self._edge_attrs:
            kept = set(map(tuple, self._edges.tolist()))
            self._edge_attrs = {k: v for k, v in self._edge_attrs.items() if k in kept}
        self._rows = None

    def _crop_masks(self, roi: Roi) -> tuple[np.ndarray, np.ndarray]:
        """(kept nodes, kept edges): nodes in ``roi``, and the edges with an end in it with
        both their ends."""
        contained = roi_mask(roi, self._locations)
        if len(self._edges) == 0:
            return contained, np.zeros(0, dtype=bool)
        kept_edges = np.isin(self._edges, self._ids[contained]).any(axis=1)
        kept = contained | np.isin(self._ids, self._edges[kept_edges])
        return kept, kept_edges

    def _subset(self, kept: np.ndarray, kept_edges: np.ndarray) -> Graph:
        """A new graph of the rows ``kept`` and edges ``kept_edges`` (copies, attributes
        too)."""
        graph = Graph.__new__(Graph)
        ids = self._ids[kept]
        edges = self._edges[kept_edges]
        node_attrs = {}
        if self._node_attrs:
            node_attrs = {i: _copy.deepcopy(self._node_attrs[i]) for i in ids.tolist()
                          if self._node_attrs.get(i)}
        edge_attrs = {}
        if self._edge_attrs:
            edge_attrs = {k: _copy.deepcopy(self._edge_attrs[k])
                          for k in map(tuple, edges.tolist()) if self._edge_attrs.get(k)}
        graph._set(ids, self._locations[kept], self._temporary[kept], edges, node_attrs,
                   edge_attrs, self._spec.copy())
        return graph

    def crop(self, roi: Roi) -> Graph:
        """A copy restricted to ``roi``: nodes inside it, plus "dangling" nodes outside that
        share an edge with a node inside (kept with that edge); ``spec.roi`` becomes ``roi``.

        Example:
            >>> g = Graph.from_arrays([1, 2, 3], [[1.0], [6.0], [9.0]], [[1, 2], [2, 3]])
            >>> c = g.crop(Roi((0,), (5,)))
            >>> c.ids.tolist(), c.edge_array.tolist(), c.spec.roi
            ([1, 2], [[1, 2]], [0:5] (5))
        """
        cropped = self._subset(*self._crop_masks(roi))
        cropped._spec.roi = roi
        return cropped

    def trim(self, roi: Roi) -> Graph:
        """``crop(roi)`` with each dangling node replaced by a temporary node where its edge
        crosses the boundary of ``roi`` (none if the inside node lies on the boundary); new
        ids start after the largest id kept. Every node of the result lies in ``roi``.

        Differences from gunpowder: crossing edges get their new ids in (u, v) order
        (gunpowder: in set order); the intercept is clipped to the largest float below the
        ROI's end (gunpowder: ``end - end * eps``, which is outside for ends <= 0).

        Example:
            >>> g = Graph.from_arrays([1, 2], [[1.0, 1.0], [9.0, 1.0]], [[1, 2]])
            >>> t = g.trim(Roi((0, 0), (5, 5)))
            >>> t.ids.tolist(), t.locations.round(3).tolist(), t.temporary_mask.tolist()
            ([1, 3], [[1.0, 1.0], [5.0, 1.0]], [False, True])
        """
        trimmed = self.crop(roi)
        contained = roi_mask(roi, trimmed._locations)
        if contained.all():
            return trimmed
        inside_ids = set(trimmed._ids[contained].tolist())
        next_id = itertools.count(int(trimmed._ids.max()) + 1 if len(trimmed._ids) else 0)
        dtype = trimmed._spec.dtype
        begin = np.array([-np.inf if b is None else b for b in roi.begin], dtype=np.float64)
        end = np.array([np.inf if e is None else e for e in roi.end], dtype=np.float64)
        upper = np.nextafter(end.astype(dtype), np.array(-np.inf, dtype=dtype))
        new_nodes, new_edges = [], []
        crossing = [tuple(e) for e in trimmed._edges.tolist()
                    if (e[0] in inside_ids) != (e[1] in inside_ids)]
        for u, v in sorted(crossing):
            u_in = u in inside_ids
            in_id, out_id = (u, v) if u_in else (v, u)
            inside = trimmed._locations[trimmed._row(in_id)].astype(np.float64)
            outside = trimmed._locations[trimmed._row(out_id)].astype(np.float64)
            location = _roi_intercept(inside, outside, begin, end, upper)
            if np.allclose(location, inside):
                continue
            new_id = next(next_id)
            new_nodes.append((new_id, location.astype(dtype), out_id))
            new_edges.append((in_id, new_id) if u_in else (new_id, in_id))
        outside_rows = ~contained
        attrs = [dict(trimmed._node_attrs.get(out_id, {})) for _, _, out_id in new_nodes]
        trimmed._take(~outside_rows)
        for (new_id, location, _), node_attrs in zip(new_nodes, attrs, strict=True):
            trimmed._ids = np.append(trimmed._ids, new_id)
            trimmed._locations = np.concatenate([trimmed._locations, location[None]])
            trimmed._temporary = np.append(trimmed._temporary, True)
            if node_attrs:
                trimmed._node_attrs[new_id] = node_attrs
        if new_edges:
            trimmed._edges = np.concatenate([trimmed._edges, np.array(new_edges, np.int64)])
        trimmed._rows = None
        return trimmed

    def with_locations(self, locations: np.ndarray, roi: Roi | None = None) -> Graph:
        """A copy with node locations ``locations`` ``(N, dims)`` (rows as ``ids``) and, if
        given, ROI ``roi``; rows with a NaN are dropped (with their edges): the points a
        transform could not follow.

        Example:
            >>> g = Graph.from_arrays([1, 2], [[0.0], [1.0]], [[1, 2]])
            >>> moved = g.with_locations(np.array([[5.0], [np.nan]]))
            >>> moved.ids.tolist(), moved.locations.tolist(), moved.num_edges()
            ([1], [[5.0]], 0)
        """
        locations = np.asarray(locations)
        if locations.shape != self._locations.shape:
            raise GraphError(
                f"new locations have shape {locations.shape}, the graph's {self._locations.shape}"
            )
        result = self.copy()
        result._locations = locations.astype(self._spec.dtype)
        lost = np.isnan(locations).any(axis=1) if len(locations) else np.zeros(0, bool)
        if lost.any():
            result._take(~lost)
        if roi is not None:
            result._spec.roi = roi
        return result

    def shift(self, offset) -> Graph:
        """Move every node by ``offset`` (world units), in place; returns the graph."""
        self._locations += np.asarray(offset, dtype=self._locations.dtype)
        return self

    def merge(self, other: Graph) -> Graph:
        """A new graph with the nodes and edges of both; ``other`` wins for equal ids. The
        ROI is the union of both.

        gunpowder 1.5 raises ``NotImplementedError`` here; this is the union a user expects.

        Example:
            >>> a = Graph.from_arrays([1, 2], [[0.0], [1.0]], [[1, 2]])
            >>> b = Graph.from_arrays([2, 3], [[5.0], [6.0]], [[2, 3]])
            >>> m = a.merge(b)
            >>> m.ids.tolist(), m.locations[:, 0].tolist(), m.edge_array.tolist()
            ([1, 2, 3], [0.0, 5.0, 6.0], [[1, 2], [2, 3]])
        """
        merged = self.copy()
        replaced = np.isin(merged._ids, other._ids)
        merged._take(~replaced, np.ones(len(merged._edges), bool))
        merged._ids = np.concatenate([merged._ids, other._ids])
        merged._locations = np.concatenate([
            merged._locations.reshape(-1, other._locations.shape[1]),
            other._locations.astype(merged._spec.dtype)])
        merged._temporary = np.concatenate([merged._temporary, other._temporary])
        edges = np.concatenate([merged._edges, other._edges])
        _, first = np.unique(edges, axis=0, return_index=True)
        merged._edges = edges[np.sort(first)]
        merged._node_attrs.update(_copy.deepcopy(other._node_attrs))
        merged._edge_attrs.update(_copy.deepcopy(other._edge_attrs))
        if merged._spec.roi is not None and other._spec.roi is not None:
            merged._spec.roi = merged._spec.roi.union(other._spec.roi)
        merged._rows = None
        return merged

    @property
    def connected_components(self) -> list[set[int]]:
        """Node ids of each (weakly) connected component."""
        import networkx as nx

        graph = self.to_nx_graph()
        if self.directed:
            return list(nx.weakly_connected_components(graph))
        return list(nx.connected_components(graph))

    def relabel_connected_components(self) -> None:
        """Give every node a ``component`` attribute: the index of its connected component."""
        for i, component in enumerate(self.connected_components):
            for node_id in component:
                self._node_attrs.setdefault(node_id, {})["component"] = i

    def to_nx_graph(self):
        """A networkx ``DiGraph`` (or ``Graph`` if undirected) with ``location`` attributes."""
        import networkx as nx

        graph = nx.DiGraph() if self.directed else nx.Graph()
        for r, node_id in enumerate(self._ids.tolist()):
            graph.add_node(node_id, **_copy.deepcopy(self._node_attrs.get(node_id, {})),
                           id=node_id, location=self._locations[r].copy(),
                           temporary=bool(self._temporary[r]))
        for u, v in self._edges.tolist():
            graph.add_edge(u, v, **_copy.deepcopy(self._edge_attrs.get((u, v), {})))
        return graph

    @classmethod
    def from_nx_graph(cls, graph, spec: GraphSpec) -> Graph:
        """A graph from a networkx graph whose nodes have a ``location`` attribute."""
        if spec.directed is None:
            spec.directed = graph.is_directed()
        nodes = [Node(node_id, np.asarray(attrs["location"]), attrs.get("temporary", False),
                      attrs) for node_id, attrs in graph.nodes(data=True)]
        edges = [Edge(u, v, dict(attrs)) for u, v, attrs in graph.edges(data=True)]
        return cls(nodes, edges, spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        order, other_order = np.argsort(self._ids), np.argsort(other._ids)
        return (
            np.array_equal(self._ids[order], other._ids[other_order])
            and np.array_equal(self._locations[order], other._locations[other_order])
            and set(map(tuple, self._edges.tolist())) == set(map(tuple, other._edges.tolist()))
        )

    __hash__ = None

    def __dask_tokenize__(self):
        from dask.base import tokenize

        return ("Graph", tokenize(self._ids, self._locations, self._edges, self._temporary,
                                  self._node_attrs, self._edge_attrs), repr(self._spec))

    def __repr__(self) -> str:
        return (f"Graph({self.num_vertices()} nodes, {self.num_edges()} edges, "
                f"roi={self._spec.roi}, directed={self._spec.directed})")


def join_parts(parts: list[Graph], spec: GraphSpec) -> Graph:
    """One graph from graphs cropped to disjoint ROIs (the tiles of a ``Scan``): each part's
    nodes inside its ROI, the union of their edges, and the dangling nodes of edges that
    leave all parts (from the first part that has them); ``spec`` is the result's.

    Example:
        >>> a = Graph.from_arrays([1, 2], [[1.0], [6.0]], [[1, 2]], GraphSpec(roi=Roi((0,), (5,))))
        >>> b = Graph.from_arrays([2, 1], [[6.0], [1.0]], [[1, 2]], GraphSpec(roi=Roi((5,), (5,))))
        >>> joined = join_parts([a, b], GraphSpec(roi=Roi((0,), (10,))))
        >>> joined.ids.tolist(), joined.edge_array.tolist()
        ([1, 2], [[1, 2]])
    """
    inside = [roi_mask(p.spec.roi, p.locations) for p in parts]
    dims = next((p.locations.shape[1] for p in parts if p.locations.ndim == 2), 0)
    ids = [p.ids[m] for p, m in zip(parts, inside, strict=True)]
    locations = [p.locations[m].reshape(-1, dims) for p, m in zip(parts, inside, strict=True)]
    temporary = [p.temporary_mask[m] for p, m in zip(parts, inside, strict=True)]
    have = set(np.concatenate(ids).tolist()) if ids else set()
    for part, mask in zip(parts, inside, strict=True):  # dangling nodes no part holds
        extra = ~mask & ~np.isin(part.ids, list(have))
        ids.append(part.ids[extra])
        locations.append(part.locations[extra].reshape(-1, dims))
        temporary.append(part.temporary_mask[extra])
        have.update(part.ids[extra].tolist())
    edges = np.concatenate([p.edge_array for p in parts]) if parts else np.zeros((0, 2))
    if len(edges):
        _, first = np.unique(edges, axis=0, return_index=True)
        edges = edges[np.sort(first)]
    node_attrs, edge_attrs = {}, {}
    for part in parts:
        node_attrs.update({k: v for k, v in part._node_attrs.items() if v and k in have})
        edge_attrs.update({k: v for k, v in part._edge_attrs.items() if v})
    return Graph.from_arrays(np.concatenate(ids) if ids else [], np.concatenate(locations)
                             if locations else np.zeros((0, dims)), edges, spec.copy(),
                             np.concatenate(temporary) if temporary else None,
                             _copy.deepcopy(node_attrs), _copy.deepcopy(edge_attrs))


def _roi_intercept(inside: np.ndarray, outside: np.ndarray, begin: np.ndarray, end: np.ndarray,
                   upper: np.ndarray) -> np.ndarray:
    """Where the segment from ``inside`` to ``outside`` leaves the box ``[begin, end)``."""
    offset = outside - inside
    with np.errstate(divide="ignore", invalid="ignore"):
        fractions = np.concatenate([(begin - inside) / offset, (end - inside) / offset])
    fractions = fractions[np.isfinite(fractions) & (fractions >= 0) & (fractions <= 1)]
    s = fractions.min() if len(fractions) else 1.0
    location = inside + s * offset
    return np.clip(location, begin, upper)
