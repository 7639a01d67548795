"""TilePlan: a tile's graph, ordered once and run many times with the same results as dask."""

import dask
import dask.array as da
import numpy as np
from dask._task_spec import Task, _execute_subgraph

from daskgp.io.checksums import combine
from daskgp.tile_plan import TilePlan


def checksums(*arrays):
    """What ``TilePlan.run`` returns for outputs ``arrays``: per output, the combined first
    element of each block, from dask's own compute."""
    return tuple(combine(int(block.compute().ravel()[0]) for block in array.blocks)
                 for array in arrays)


def double(block):
    return block * 2


def test_fused_tasks_are_inlined_and_ordered_once(monkeypatch):
    # A tile as predict plans it: a read (here a delayed), slicing, the model, fused by dask
    # into one task whose subgraph needs nothing outside it; it is inlined.
    first = da.from_delayed(dask.delayed(np.arange)(12), (12,), int)[2:10].map_blocks(
        double, dtype=int)
    second = da.from_delayed(dask.delayed(np.ones)(6, int), (6,), int)[1:5].map_blocks(
        np.negative)
    plan = TilePlan([first, second], num_outputs=2)
    assert not any(isinstance(node, Task) and node.func is _execute_subgraph
                   for node in plan.nodes)

    expected = checksums(first, second)

    def no_ordering(*args, **kwargs):
        raise AssertionError("ordered again")

    monkeypatch.setattr(dask.order, "order", no_ordering)
    assert plan.run() == plan.run() == expected


def test_fused_tasks_with_inputs_stay_fused_and_compute_the_same():
    raw = da.from_array(np.arange(24).reshape(2, 12), chunks=(2, 4))
    other = da.from_array(np.arange(12) * 3, chunks=4)
    first = (raw[0] + 1) * other  # fused tasks that take other tasks' results
    second = (raw[1] - other) ** 2
    plan = TilePlan([first, second], num_outputs=1)
    assert plan.run() == checksums(second)
