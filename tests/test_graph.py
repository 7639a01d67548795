"""Graph, Node, Edge: gunpowder's semantics on numpy arrays (crop/trim against gunpowder 1.5)."""

import json
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

import daskgp as gp
from daskgp.graph_index import GraphIndex

FIXTURES = json.loads(
    (Path(__file__).parent / "data" / "graphs" / "gp_graph_fixtures.json").read_text()
)


def _fixture_graph():
    data = FIXTURES["crop_trim"]
    spec = gp.GraphSpec(roi=gp.Roi((0, 0, 0), (20, 20, 20)), directed=False)
    return gp.Graph.from_arrays(np.arange(len(data["locations"])), data["locations"],
                                data["edges"], spec)


def _dump(graph):
    nodes = sorted([int(i), loc, bool(t)] for i, loc, t in zip(
        graph.ids.tolist(), graph.locations.tolist(), graph.temporary_mask.tolist(),
        strict=True))
    return nodes, sorted(map(list, graph.edge_array.tolist()))


@pytest.mark.parametrize("case", range(3))
def test_crop_equals_gunpowder(case):
    expected = FIXTURES["crop_trim"]["cases"][case]
    roi = gp.Roi(*expected["roi"])
    nodes, edges = _dump(_fixture_graph().crop(roi))
    assert nodes == expected["crop"]["nodes"]
    assert edges == expected["crop"]["edges"]


@pytest.mark.parametrize("case", range(3))
def test_trim_equals_gunpowder_up_to_new_ids(case):
    expected = FIXTURES["crop_trim"]["cases"][case]
    roi = gp.Roi(*expected["roi"])
    trimmed = _fixture_graph().trim(roi)
    nodes, edges = _dump(trimmed)
    # Kept (non-temporary) nodes are identical; temporary ones sit at the same places.
    assert [n for n in nodes if not n[2]] == [n for n in expected["trim"]["nodes"] if not n[2]]
    def temporaries(ns):
        return sorted(np.round(n[1], 4).tolist() for n in ns if n[2])
    assert temporaries(nodes) == temporaries(expected["trim"]["nodes"])
    # Edges are the same once ids of temporary nodes are replaced by their locations.
    def named(ns, es):
        where = {n[0]: (n[0] if not n[2] else tuple(np.round(n[1], 4))) for n in ns}
        return sorted(sorted(map(str, (where[u], where[v]))) for u, v in es)
    assert named(nodes, edges) == named(expected["trim"]["nodes"], expected["trim"]["edges"])
    assert gp.graph.roi_mask(roi, trimmed.locations).all()


def test_crop_keeps_dangling_nodes_and_trim_replaces_them():
    spec = gp.GraphSpec(roi=gp.Roi((0, 0), (20, 20)))
    graph = gp.Graph([gp.Node(1, np.array([2.0, 2.0])), gp.Node(2, np.array([2.0, 12.0])),
                      gp.Node(3, np.array([15.0, 15.0])), gp.Node(7, np.array([4.0, 4.0]))],
                     [gp.Edge(1, 2), gp.Edge(2, 3)], spec)
    roi = gp.Roi((0, 0), (10, 10))
    cropped = graph.crop(roi)
    assert sorted(cropped.ids.tolist()) == [1, 2, 7]      # 2 dangles, 3 is gone
    assert cropped.edge_array.tolist() == [[1, 2]]
    assert cropped.spec.roi == roi and graph.num_vertices() == 4  # the original is untouched
    trimmed = graph.trim(roi)
    assert sorted(trimmed.ids.tolist()) == [1, 7, 8]       # new ids after the largest kept
    new = trimmed.node(8)
    assert new.temporary and new.original_id is None
    np.testing.assert_allclose(new.location, [2.0, 10.0], atol=1e-5)
    assert new.location[1] < 10.0                          # inside: end is excluded
    assert trimmed.edge_array.tolist() == [[1, 8]]         # direction of (1, 2) kept


def test_node_api_writes_through_and_nx_round_trip():
    graph = gp.Graph.from_arrays([4, 5], [[0.0, 0.0], [1.0, 1.0]], [[4, 5]],
                                 gp.GraphSpec(roi=gp.Roi((0, 0), (10, 10)), directed=True))
    for node in graph.nodes:
        node.location += 1
        node.radius = node.id * 2
    graph.node(5).location = np.array([7.0, 7.0])
    assert graph.locations.tolist() == [[1.0, 1.0], [7.0, 7.0]]
    assert graph.node(4).attrs["radius"] == 8 and graph.node(5).radius == 10
    nx_graph = graph.to_nx_graph()
    assert isinstance(nx_graph, nx.DiGraph) and list(nx_graph.edges) == [(4, 5)]
    back = gp.Graph.from_nx_graph(nx_graph, gp.GraphSpec(roi=graph.spec.roi))
    assert back == graph and back.node(5).radius == 10 and back.directed
    graph.add_node(gp.Node(9, np.array([3.0, 3.0])))
    graph.add_edge(gp.Edge(5, 9))
    graph.remove_node(graph.node(5), retain_connectivity=True)
    assert graph.ids.tolist() == [4, 9] and graph.edge_array.tolist() == [[4, 9]]
    graph.relabel_connected_components()
    assert {n.component for n in graph.nodes} == {0}
    assert graph.shift((1, 2)).locations.tolist() == [[2.0, 3.0], [4.0, 5.0]]


def test_graph_errors_name_the_problem():
    with pytest.raises(gp.GraphError, match="duplicate node ids"):
        gp.Graph.from_arrays([1, 1], [[0.0], [1.0]])
    with pytest.raises(gp.GraphError, match="missing nodes"):
        gp.Graph.from_arrays([1], [[0.0]], [[1, 2]])


def test_index_subgraph_equals_crop():
    rng = np.random.default_rng(0)
    locations = rng.uniform(0, 100, size=(2000, 3))
    edges = np.stack([np.arange(1999), np.arange(1, 2000)], axis=1)[::3]
    graph = gp.Graph.from_arrays(np.arange(2000) * 3 + 1, locations, edges * 3 + 1)
    index = GraphIndex(graph)
    for begin, shape in [((10, 10, 10), (30, 5, 40)), ((-5, 90, 0), (20, 20, 200)),
                         ((200, 0, 0), (5, 5, 5))]:
        roi = gp.Roi(begin, shape)
        assert index.subgraph(roi) == graph.crop(roi)
