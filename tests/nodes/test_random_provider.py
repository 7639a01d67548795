"""RandomProvider: seeded choice with the given probabilities, recorded in random_provider_key,
the intersection of the upstream keys."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source

RAW, GT, CHOICE = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("CHOICE")


def _branches():
    first = (array_source(RAW, np.full((4, 4, 4), 10, np.uint8)),
             array_source(GT, np.zeros((4, 4, 4), np.uint64))) + gp.MergeProvider()
    second = array_source(RAW, np.full((4, 4, 4), 20, np.uint8))
    return first, second


def _request(seed=None):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (2, 2, 2))
    request[CHOICE] = gp.ArraySpec(nonspatial=True)
    return request


def test_probabilities_are_followed_and_the_key_names_the_branch():
    pipeline = _branches() + gp.RandomProvider([0.25, 0.75], random_provider_key=CHOICE)
    choices = []
    with gp.build(pipeline, scheduler="sync", seed=3) as p:
        assert GT not in p.spec and RAW in p.spec and p.spec[CHOICE].nonspatial
        for _ in range(200):
            batch = p.request_batch(_request())
            choice = int(batch[CHOICE].data)
            assert batch[CHOICE].data.dtype == np.int64
            assert int(batch[RAW].data[0, 0, 0]) == (10, 20)[choice]
            choices.append(choice)
    # 200 draws with p = 0.75: the count of ones is 150 +- 6.1 (one standard deviation).
    assert 130 <= sum(choices) <= 170
    assert 0 in choices


def test_choice_is_a_function_of_the_seed_not_of_global_rng_state():
    pipeline = _branches() + gp.RandomProvider(random_provider_key=CHOICE)
    with gp.build(pipeline, scheduler="sync") as p:
        first = [int(p.request_batch(_request(seed))[CHOICE].data) for seed in range(20)]
        np.random.seed(0)
        again = [int(p.request_batch(_request(seed))[CHOICE].data) for seed in range(20)]
    assert first == again and 0 < sum(first) < 20


def test_bad_probabilities_fail_clearly():
    with pytest.raises(gp.PipelineSetupError, match="non-negative"):
        gp.RandomProvider([1, -1])
    with pytest.raises(gp.PipelineSetupError, match="3 probabilities for 2 upstream"):
        with gp.build(_branches() + gp.RandomProvider([1, 1, 1])):
            pass


POINTS, OTHER = gp.GraphKey("POINTS"), gp.GraphKey("OTHER")
VOLUME = gp.Roi((0, 0, 0), (8, 16, 16))


def _graph(first_id, rng):
    """Ten points in VOLUME with ids first_id, first_id + 1, ..."""
    locations = rng.integers(0, VOLUME.shape, size=(10, 3)) + 0.5
    return gp.Graph.from_arrays(np.arange(first_id, first_id + 10), locations,
                                spec=gp.GraphSpec(roi=VOLUME))


def _graph_branches(location=None):
    """Two branches, each raw (filled with 10 or 20) merged with a GraphSource of POINTS
    (ids 100... or 200...); the first also serves GT and OTHER, which the second lacks."""
    rng = np.random.default_rng(0)
    graphs = [_graph(100, rng), _graph(200, rng)]
    branches = []
    for index, value in enumerate((10, 20)):
        sources = [array_source(RAW, np.full(VOLUME.shape, value, np.uint8)),
                   gp.GraphSource(POINTS, graphs[index])]
        if index == 0:
            sources += [array_source(GT, np.zeros(VOLUME.shape, np.uint64)),
                        gp.GraphSource(OTHER, _graph(0, rng))]
        branch = tuple(sources) + gp.MergeProvider()
        branches.append(branch if location is None else branch + location())
    return tuple(branches), graphs


def _graph_request(seed, roi):
    request = _request(seed)
    request[POINTS] = gp.GraphSpec(roi=roi)
    return request


def test_graphs_come_from_the_chosen_branch_and_keys_are_the_intersection():
    branches, graphs = _graph_branches()
    roi = gp.Roi((0, 0, 0), (8, 8, 16))
    choices = set()
    with gp.build(branches + gp.RandomProvider(random_provider_key=CHOICE),
                  scheduler="sync") as p:
        assert set(p.spec.keys()) == {RAW, POINTS, CHOICE}
        assert p.spec[POINTS].roi == VOLUME
        for seed in range(12):
            batch = p.request_batch(_graph_request(seed, roi))
            choice = int(batch[CHOICE].data)
            choices.add(choice)
            assert int(batch[RAW].data[0, 0, 0]) == (10, 20)[choice]
            # Exactly the points of the chosen branch's graph in the requested ROI.
            assert batch[POINTS] == graphs[choice].crop(roi)
            assert batch[POINTS].num_vertices() > 0
    assert choices == {0, 1}
    request = _graph_request(0, roi)
    request[OTHER] = gp.GraphSpec(roi=roi)
    with gp.build(branches + gp.RandomProvider(random_provider_key=CHOICE)) as p:
        with pytest.raises(gp.BatchRequestError, match="asked for OTHER, which this node does "
                                                       "not provide"):
            p.request_batch(request)


def test_graph_branches_with_random_location_and_reject():
    # The usual pattern: a RandomLocation per branch, then RandomProvider, then Reject.
    branches, graphs = _graph_branches(location=gp.RandomLocation)
    pipeline = (branches + gp.RandomProvider(random_provider_key=CHOICE)
                + gp.Reject(ensure_nonempty=POINTS))
    roi = gp.Roi((0, 0, 0), (4, 4, 4))
    with gp.build(pipeline, scheduler="sync") as p:
        batches = [p.request_batch(_graph_request(seed, roi)) for seed in range(10)]
        again = p.request_batch(_graph_request(4, roi))
    assert {int(b[CHOICE].data) for b in batches} == {0, 1}
    for batch in batches:
        choice, graph = int(batch[CHOICE].data), batch[POINTS]
        assert graph.num_vertices() >= 1 and graph.spec.roi == roi
        assert set(graph.ids.tolist()) <= set(graphs[choice].ids.tolist())
        assert int(batch[RAW].data[0, 0, 0]) == (10, 20)[choice]
    assert again[POINTS] == batches[4][POINTS]
    assert int(again[CHOICE].data) == int(batches[4][CHOICE].data)
