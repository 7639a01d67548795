"""Users' own nodes, written as gunpowder's tutorial writes them, give gunpowder's numbers.

The fixtures are gunpowder 1.5.0's outputs for the same code (tests/data/tutorial_nodes.py),
made by tests/data/make_tutorial_fixtures.py.
"""

import pathlib

import numpy as np
import pytest

import daskgp as gp
from tests.data.tutorial_nodes import make_nodes, run_cases

FIXTURES = pathlib.Path(__file__).parent / "data" / "tutorial_fixtures.npz"


@pytest.fixture(scope="module")
def daskgp_outputs():
    return run_cases(gp)


@pytest.mark.parametrize("case", sorted(np.load(FIXTURES).files))
def test_users_nodes_give_gunpowders_values(daskgp_outputs, case):
    expected = np.load(FIXTURES)[case]
    actual = daskgp_outputs[case]
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def test_every_case_has_a_fixture(daskgp_outputs):
    assert sorted(daskgp_outputs) == sorted(np.load(FIXTURES).files)


RGB, MASK = gp.ArrayKey("RGB"), gp.ArrayKey("MASK")


def rgb_request(offset):
    request = gp.BatchRequest()
    request[RGB] = gp.Roi(offset, (24, 40))
    return request


def test_learned_outputs_make_later_batches_lazy():
    nodes = make_nodes(gp)
    pipeline = nodes["RgbSource"](RGB) + gp.Normalize(RGB) + nodes["ChannelMean"](RGB)
    with gp.build(pipeline, scheduler="sync") as p:
        first = p.request_batch(rgb_request((4, 8)))
        lazy = p.request_lazy_batch(rgb_request((4, 8)))
        assert lazy[RGB].data.dtype == np.float32 and lazy[RGB].data.shape == (12, 20)
        names = {str(k[0] if isinstance(k, tuple) else k) for k in lazy[RGB].data.dask}
        assert any(name.startswith("channel-mean-") and "learned" not in name for name in names)
        np.testing.assert_array_equal(lazy.compute(scheduler="sync")[RGB].data, first[RGB].data)
        moved = p.request_batch(rgb_request((10, 20)))
    assert moved[RGB].data.shape == (12, 20)


class ChangesItsMind(gp.BatchFilter):
    """Returns float32 on the first batch, float64 after: not describable by one dask graph."""

    def __init__(self):
        self.calls = 0

    def process(self, batch, request):
        self.calls += 1
        dtype = np.float32 if self.calls == 1 else np.float64
        batch[RGB].data = batch[RGB].data.astype(dtype)


def test_node_that_changes_its_dtype_later_is_named():
    nodes = make_nodes(gp)
    with gp.build(nodes["RgbSource"](RGB) + ChangesItsMind(), scheduler="sync") as p:
        p.request_batch(rgb_request((4, 8)))
        with pytest.raises(gp.ArrayError, match=r"ChangesItsMind returned RGB with shape "
                           r"\(3, 12, 20\) and dtype float64, but \(3, 12, 20\) and float32"):
            p.request_batch(rgb_request((4, 8)))


def test_roi_assignment_wraps_the_roi_in_a_spec():
    request = gp.BatchRequest()
    request[RGB] = gp.Roi((0, 0), (4, 4))
    assert isinstance(request[RGB], gp.ArraySpec) and request[RGB].roi == gp.Roi((0, 0), (4, 4))


def test_planning_without_learning_runs_no_numpy_node():
    from daskgp.numpy_nodes import learned_outputs, without_learning

    node = ChangesItsMind()
    nodes = make_nodes(gp)
    with gp.build(nodes["RgbSource"](RGB) + gp.Normalize(RGB) + node, scheduler="sync") as p:
        with without_learning():
            lazy = p.request_lazy_batch(rgb_request((4, 8)))
        assert node.calls == 0 and learned_outputs(node) == {}
        assert lazy[RGB].data.dtype == np.float32 and lazy[RGB].data.shape == (3, 12, 20)
        p.request_batch(rgb_request((4, 8)))
        assert node.calls == 1 and RGB in learned_outputs(node)
