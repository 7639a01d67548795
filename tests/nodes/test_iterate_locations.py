"""IterateLocations and SpecifiedLocation: batches centred on nodes or given locations."""

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
POINTS = gp.GraphKey("POINTS")
NODE_ID = gp.ArrayKey("NODE_ID")


SOURCE_LOCATIONS = np.array([[5.5, 5.5, 5.5], [10.5, 12.5, 8.5], [0.5, 0.5, 0.5],
                             [15.5, 6.5, 14.5]])


def _source():
    graph = gp.Graph.from_arrays([10, 11, 12, 13], SOURCE_LOCATIONS,
                                 spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), (20, 20, 20))))
    raw = array_source(RAW, position_data((20, 20, 20)))
    return (raw, gp.GraphSource(POINTS, graph)) + gp.MergeProvider()


def _request():
    request = gp.BatchRequest()
    request.add(RAW, (4, 4, 4))
    request.add(POINTS, (4, 4, 4))
    request[NODE_ID] = gp.ArraySpec(nonspatial=True)
    return request


def test_iterate_visits_nodes_in_order_skipping_those_that_do_not_fit():
    pipeline = _source() + gp.IterateLocations(POINTS, node_id=NODE_ID)
    seen = []
    with gp.build(pipeline, scheduler="sync", seed=1) as p:
        for _ in range(4):
            batch = p.request_batch(_request())
            node = int(batch[NODE_ID].data[0])
            seen.append(node)
            graph = batch[POINTS]
            # The visited node is at the centre of the batch, and the raw data is there too.
            location = graph.locations[graph.ids.tolist().index(node)]
            assert np.abs(location - np.array(graph.spec.roi.center)).max() <= 0.5
            z, y, x = SOURCE_LOCATIONS[node - 10].astype(int)  # where it is in the source
            local = tuple(int(v) for v in np.floor(location) - np.array(graph.spec.roi.begin))
            assert batch[RAW].data[local] == z * 10**8 + y * 10**4 + x
    # Node 12 at the corner cannot be centred in a 4^3 batch: skipped for the next one.
    assert seen == [10, 11, 13, 13]


def test_iterate_randomly_is_seeded():
    pipeline = _source() + gp.IterateLocations(POINTS, node_id=NODE_ID, choose_randomly=True)

    def run():
        with gp.build(pipeline, scheduler="sync", seed=3) as p:
            return [int(p.request_batch(_request())[NODE_ID].data[0]) for _ in range(6)]

    first = run()
    assert first == run() and set(first) <= {10, 11, 13}


def test_iterate_without_nodes_names_the_graph():
    pipeline = _source() + gp.IterateLocations(POINTS, roi=gp.Roi((18, 18, 18), (2, 2, 2)))
    with pytest.raises(gp.PipelineSetupError, match="POINTS has no node"):
        with gp.build(pipeline, scheduler="sync"):
            pass


def test_specified_location_in_order_with_extra_data():
    locations = [[6, 6, 6], [0, 0, 0], [12, 12, 12]]
    pipeline = _source() + gp.SpecifiedLocation(locations, extra_data=["a", "b", "c"])
    request = _request()
    del request[NODE_ID]
    with gp.build(pipeline, scheduler="sync", seed=0) as p:
        first = p.request_batch(request)
        second = p.request_batch(request)
    assert first[RAW].data[2, 2, 2] == 6 * 10**8 + 6 * 10**4 + 6
    assert first[RAW].attrs["specified_location_extra_data"] == "a"
    assert second[RAW].data[2, 2, 2] == 12 * 10**8 + 12 * 10**4 + 12  # [0, 0, 0] skipped
    assert second[RAW].attrs["specified_location_extra_data"] == "c"
    assert 10 in first[POINTS] and first[POINTS].spec.roi == request[POINTS].roi


def test_specified_location_gives_up_with_a_clear_error():
    pipeline = _source() + gp.SpecifiedLocation([[0, 0, 0]], choose_randomly=True)
    request = _request()
    del request[NODE_ID]
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match="none of the 5 locations"):
            p.request_batch(request)
