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


def test_graph_keys_are_relayed_from_the_chosen_branch():
    points = gp.GraphKey("POINTS")

    class Points(gp.BatchProvider):
        """Serves a stand-in graph (daskgp's Graph arrives with graph support)."""

        lazy = True

        def __init__(self, name):
            self.label = name

        def setup(self):
            self.provides(points, gp.GraphSpec(roi=gp.Roi((0, 0, 0), (4, 4, 4))))

        def provide(self, request):
            batch = gp.Batch()
            batch[points] = self.label
            return batch

    branches = tuple((array_source(RAW, np.full((4, 4, 4), v, np.uint8)), Points(v))
                     + gp.MergeProvider() for v in (10, 20))
    request = _request(seed=1)
    request[points] = gp.GraphSpec(roi=gp.Roi((0, 0, 0), (2, 2, 2)))
    with gp.build(branches + gp.RandomProvider(random_provider_key=CHOICE),
                  scheduler="sync") as p:
        assert points in p.spec
        batch = p.request_batch(request)
    assert batch[points] == int(batch[RAW].data[0, 0, 0])
