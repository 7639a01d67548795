"""Chaining with ``+`` and tuples, build(), seeding of requests, scheduler choice."""

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
GT = gp.ArrayKey("GT")


def test_plus_chains_nodes_and_tuples_merge():
    raw_source = array_source(RAW, position_data((8, 8, 8)))
    gt_source = array_source(GT, position_data((8, 8, 8)).astype(np.uint64))
    pipeline = (raw_source, gt_source) + gp.MergeProvider()
    assert repr(pipeline) == "MergeProvider <- (ArraySource, ArraySource)"
    request = gp.BatchRequest(random_seed=3)
    request.add(RAW, (4, 4, 4))
    request.add(GT, (2, 2, 2))
    with gp.build(pipeline, scheduler="sync") as p:
        batch = p.request_batch(request)
    expected = position_data((8, 8, 8))
    np.testing.assert_array_equal(batch[RAW].data, expected[:4, :4, :4])
    np.testing.assert_array_equal(batch[GT].data, expected[1:3, 1:3, 1:3])
    assert batch[GT].data.dtype == np.uint64


def test_merge_provider_rejects_a_key_provided_twice():
    a = array_source(RAW, position_data((4, 4, 4)))
    b = array_source(RAW, position_data((4, 4, 4)))
    with pytest.raises(gp.PipelineSetupError, match="RAW is provided by both"):
        with gp.build((a, b) + gp.MergeProvider()):
            pass


def test_request_without_build_is_an_error():
    pipeline = gp.Pipeline(array_source(RAW, position_data((4, 4, 4))))
    with pytest.raises(gp.PipelineSetupError, match=r"gp\.build"):
        pipeline.request_batch(gp.BatchRequest())


def test_requests_without_seed_get_a_sequence_from_the_build_seed():
    pipeline = gp.Pipeline(array_source(RAW, position_data((4, 4, 4))))
    request = gp.BatchRequest()
    request.add(RAW, (2, 2, 2))
    seeds = []
    for _ in range(2):
        with gp.build(pipeline, scheduler="sync", seed=5) as p:
            seeds.append([p.request_lazy_batch(request).random_seed for _ in range(3)])
    assert seeds[0] == seeds[1]
    assert len(set(seeds[0])) == 3
    assert request.random_seed is None, "the user's request is not modified"
    with gp.build(pipeline, scheduler="sync", seed=6) as p:
        assert p.request_lazy_batch(request).random_seed != seeds[0][0]


def test_build_without_seed_draws_one_and_records_it():
    pipeline = gp.Pipeline(array_source(RAW, position_data((4, 4, 4))))
    with gp.build(pipeline, scheduler="sync") as p:
        assert isinstance(p.seed, int)


def test_scheduler_names_are_resolved_and_validated():
    assert gp.resolve_scheduler("synchronous") == "sync"
    assert gp.resolve_scheduler("threading") == "threads"
    assert gp.resolve_scheduler(None) == "threads"
    with pytest.raises(ValueError, match="unknown scheduler 'gpu'"):
        gp.resolve_scheduler("gpu")


def test_an_active_client_is_the_default(cluster_client):
    with cluster_client.as_current():
        assert gp.resolve_scheduler(None) is cluster_client


def test_teardown_is_called_on_exit():
    class Tracks(gp.BatchFilter):
        lazy = True
        torn_down = False

        def teardown(self):
            Tracks.torn_down = True

    with gp.build(array_source(RAW, position_data((4, 4, 4))) + Tracks(), scheduler="sync"):
        pass
    assert Tracks.torn_down
