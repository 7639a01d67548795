"""Graphs pass through every node that does not move them, and through users' numpy nodes."""

import numpy as np
import pytest

import daskgp as gp

RAW = gp.ArrayKey("RAW")
POINTS = gp.GraphKey("POINTS")


def _source():
    rng = np.random.default_rng(0)
    raw = gp.ArraySource(RAW, rng.random((1, 20, 20, 20)).astype(np.float32),
                         gp.ArraySpec(roi=gp.Roi((0, 0, 0), (20, 20, 20)), voxel_size=(1, 1, 1)))
    graph = gp.Graph.from_arrays(np.arange(30), rng.uniform(0, 20, (30, 3)),
                                 np.stack([np.arange(29), np.arange(1, 30)], axis=1),
                                 gp.GraphSpec(roi=gp.Roi((0, 0, 0), (20, 20, 20))))
    return (raw, gp.GraphSource(POINTS, graph)) + gp.MergeProvider(), graph


class PassThrough(gp.BatchFilter):
    """A gunpowder user's numpy node that reads the graph and leaves it alone."""

    def process(self, batch, request):
        assert batch[POINTS].num_vertices() > 0
        batch[RAW].data = batch[RAW].data * 2


class AddNode(gp.BatchFilter):
    """A gunpowder user's numpy node that adds a node to the graph (declared in setup)."""

    def setup(self):
        self.updates(POINTS, self.spec[POINTS])

    def process(self, batch, request):
        graph = batch[POINTS]
        graph.add_node(gp.Node(1000, np.array(request[POINTS].roi.center, dtype=np.float32)))


class SneakyChange(gp.BatchFilter):
    def process(self, batch, request):
        batch[POINTS].remove_node(next(batch[POINTS].nodes))


NODES = {
    "AsType": lambda: gp.AsType(RAW, np.float64),
    "DefectAugment": lambda: gp.DefectAugment(RAW, prob_missing=0.3),
    "IntensityAugment": lambda: gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1),
    "IntensityScaleShift": lambda: gp.IntensityScaleShift(RAW, 2, 1),
    "NoiseAugment": lambda: gp.NoiseAugment(RAW),
    "Normalize": lambda: gp.Normalize(RAW),
    "PrintProfilingStats": lambda: gp.PrintProfilingStats(),
    "Squeeze": lambda: gp.Squeeze([RAW]),
    "PreCache": lambda: gp.PreCache(cache_size=2, num_workers=1),
    "PassThrough": PassThrough,
    "Pad": lambda: gp.Pad(RAW, gp.Coordinate((2, 2, 2))),
    "Crop": lambda: gp.Crop(RAW, gp.Roi((0, 0, 0), (18, 18, 18))),
}


def _request(seed=0):
    request = gp.BatchRequest(random_seed=seed)
    request[RAW] = gp.ArraySpec(roi=gp.Roi((2, 3, 4), (10, 10, 10)))
    request[POINTS] = gp.GraphSpec(roi=gp.Roi((4, 4, 4), (10, 12, 8)))
    return request


@pytest.mark.parametrize("name", list(NODES))
def test_graph_passes_through(name):
    source, graph = _source()
    with gp.build(source + NODES[name](), scheduler="threads") as p:
        batch = p.request_batch(_request())
    assert batch[POINTS] == graph.crop(_request()[POINTS].roi)
    assert batch[POINTS].spec.roi == _request()[POINTS].roi


def test_numpy_node_that_declares_the_graph_changes_it():
    source, graph = _source()
    with gp.build(source + AddNode() + gp.Normalize(RAW), scheduler="threads") as p:
        batch = p.request_batch(_request())
    assert 1000 in batch[POINTS]
    assert batch[POINTS].num_vertices() == graph.crop(_request()[POINTS].roi).num_vertices() + 1


def test_numpy_node_that_changes_an_undeclared_graph_fails_loudly():
    source, _ = _source()
    with gp.build(source + SneakyChange(), scheduler="sync") as p:
        with pytest.raises(gp.DaskgpError, match="changed the graph POINTS"):
            p.request_batch(_request())


def test_stack_keeps_the_first_repetitions_graph():
    source, _ = _source()
    with gp.build(source + gp.RandomLocation() + gp.Stack(3), scheduler="sync") as p:
        batch = p.request_batch(_request(4))
    assert batch[RAW].data.shape[0] == 3
    assert batch[POINTS].spec.roi == _request()[POINTS].roi


def test_pad_and_crop_a_graph():
    source, graph = _source()
    pipeline = source + gp.Crop(POINTS, gp.Roi((0, 0, 0), (15, 20, 20))) + gp.Pad(
        POINTS, gp.Coordinate((10, 10, 10)))
    request = gp.BatchRequest(random_seed=0)
    request[POINTS] = gp.GraphSpec(roi=gp.Roi((-5, -5, -5), (25, 10, 30)))
    with gp.build(pipeline, scheduler="sync") as p:
        assert p.spec[POINTS].roi == gp.Roi((-10, -10, -10), (35, 40, 40))
        out = p.request_batch(request)[POINTS]
    assert out.spec.roi == request[POINTS].roi
    # Pad asks upstream for the request clipped to the upstream ROI, and adds no node.
    clipped = gp.Roi((0, 0, 0), (15, 5, 20))
    assert out == graph.crop(clipped).crop(request[POINTS].roi)
    assert out.num_vertices() > 0


def test_scan_joins_the_graphs_of_its_tiles():
    source, graph = _source()
    reference = gp.BatchRequest()
    reference[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (5, 5, 5)))
    reference[POINTS] = gp.GraphSpec(roi=gp.Roi((0, 0, 0), (5, 5, 5)))
    request = gp.BatchRequest(random_seed=0)
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (20, 15, 20)))
    request[POINTS] = gp.GraphSpec(roi=gp.Roi((0, 0, 0), (20, 15, 20)))
    with gp.build(source + gp.Scan(reference), scheduler="sync") as p:
        batch = p.request_batch(request)
    expected = graph.crop(request[POINTS].roi)
    assert batch[POINTS] == expected and batch[POINTS].spec.roi == request[POINTS].roi
    assert 0 < expected.num_edges() < graph.num_edges()  # edges leaving the ROI are cut


def test_a_placeholder_graph_plans_but_is_not_delivered():
    source, _ = _source()
    pipeline = source + gp.RandomLocation() + gp.ElasticAugment([4, 4, 4], [0, 0.5, 0.5], [0, 0])
    request = _request(2)
    request[POINTS].placeholder = True
    with gp.build(pipeline, scheduler="sync") as p:
        batch = p.request_batch(request)
    assert POINTS not in batch and batch[RAW].data.shape == (1, 10, 10, 10)
