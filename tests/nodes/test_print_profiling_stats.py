import time

import numpy as np

import daskgp as gp
from tests.test_numpy_nodes import AddNoise, PositionSource

RAW = gp.ArrayKey("RAW")
NOISY = gp.ArrayKey("NOISY")


class Slow(gp.BatchFilter):
    """A numpy node that takes a known time in its task."""

    def process(self, batch, request):
        time.sleep(0.3)


def test_table_names_nodes_with_their_compute_time(capsys, scheduler):
    request = gp.BatchRequest()
    request.add(RAW, (40, 20, 20))
    request.add(NOISY, (40, 20, 20))
    profiler = gp.PrintProfilingStats(every=2)
    pipeline = PositionSource() + AddNoise() + Slow() + profiler
    with gp.build(pipeline, scheduler=scheduler, seed=1) as p:
        # The first batch runs the numpy nodes in the driver, to learn their outputs: their
        # time is planning ("process") there; the table after it shows later batches' tasks.
        learning = p.request_batch(request)
        assert capsys.readouterr().out == "", "nothing printed before `every` batches"
        p.request_batch(request)
        capsys.readouterr()
        first = p.request_batch(request)
        p.request_batch(request)
    table = capsys.readouterr().out
    assert learning.profiling_stats.seconds["Slow"]["process"] >= 0.29
    assert "profiling stats over 2 batch(es)" in table
    rows = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert {"Slow", "AddNoise", "PositionSource"} <= set(rows)
    *_, compute_ms, tasks = map(float, rows["Slow"])
    assert compute_ms >= 290, "Slow sleeps 0.3 s in its task"
    assert tasks == 1.0
    assert float(rows["AddNoise"][3]) < 250
    assert profiler.stats.batches == 2
    assert first.profiling_stats.seconds["Slow"]["compute"] >= 0.29
    assert isinstance(first[RAW].data, np.ndarray)
