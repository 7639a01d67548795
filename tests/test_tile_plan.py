"""TilePlan: a tile's graph, ordered once and run many times with the same results as dask."""

import dask
import dask.array as da
import numpy as np

from daskgp.io.checksums import combine
from daskgp.tile_plan import TilePlan


def checksums(*arrays):
    """What ``TilePlan.run`` returns for outputs ``arrays``: per output, the combined first
    element of each block, from dask's own compute."""
    return tuple(combine(int(block.compute().ravel()[0]) for block in array.blocks)
                 for array in arrays)


def double(block):
    return block * 2


def test_a_plan_is_ordered_once_and_runs_as_dask_computes(monkeypatch):
    # A tile as predict plans it: a read (here a delayed), slicing, the model.
    first = da.from_delayed(dask.delayed(np.arange)(12), (12,), int)[2:10].map_blocks(
        double, dtype=int)
    second = da.from_delayed(dask.delayed(np.ones)(6, int), (6,), int)[1:5].map_blocks(
        np.negative)
    plan = TilePlan([first, second], num_outputs=2)
    expected = checksums(first, second)

    def no_ordering(*args, **kwargs):
        raise AssertionError("ordered again")

    monkeypatch.setattr("daskgp.tile_plan.order", no_ordering)
    monkeypatch.setattr(dask.order, "order", no_ordering)
    assert plan.run() == plan.run() == expected


def test_only_the_tiles_tasks_are_kept_and_in_memory_inputs_run():
    # from_array puts the numpy array into the graph as a value; slicing a big array keeps only
    # the chunks the tile needs.
    raw = da.from_array(np.arange(10_000).reshape(100, 100), chunks=(10, 10))
    tile = raw[5:15, 5:15] + 1
    other = (raw[0, :20] - 3) ** 2
    plan = TilePlan([tile, other], num_outputs=1)
    assert len(plan.graph) < 30  # 4 + 2 source chunks and their tasks, not 100 chunks
    assert plan.run() == checksums(other)


def test_every_side_effect_runs_not_only_the_outputs():
    ran = []

    def record(block, name):
        ran.append(name)
        return block

    write = da.ones(4, chunks=2).map_blocks(record, "write", dtype=float)
    output = da.arange(4, chunks=4).map_blocks(record, "output", dtype=int)
    expected = checksums(output)
    ran.clear()
    assert TilePlan([write, output], num_outputs=1).run() == expected
    assert sorted(ran) == ["output", "write", "write"]


def test_reads_and_writes_take_no_compute_slot(tmp_path):
    import zarr

    from daskgp.io.array_writer import ZarrArrayWriter, write_blocks
    from daskgp.io.region import read_region
    from daskgp.io.zarr_reader import ZarrReader

    zarr.create_array(str(tmp_path / "in.zarr"), shape=(8, 8), chunks=(4, 4), dtype="u1",
                      zarr_format=2)[:] = np.arange(64, dtype="u1").reshape(8, 8)
    zarr.create_array(str(tmp_path / "out.zarr"), shape=(8, 8), chunks=(4, 4), dtype="f4",
                      zarr_format=2)
    read = read_region(ZarrReader(str(tmp_path / "in.zarr"), ""), (0, 0), (8, 8), (0, 1),
                       np.dtype("u1"), (4, 4), "read")
    model = read.map_blocks(double, dtype="u1").astype("f4")
    write = write_blocks(model, ZarrArrayWriter(str(tmp_path / "out.zarr"), ""), (0, 0), (4, 4),
                         "Write", "write")
    plan = TilePlan([write], num_outputs=1)
    gated = {node.key[0] if isinstance(node.key, tuple) else node.key: flag
             for node, flag in zip(plan.nodes, plan._gated, strict=True)}
    assert {name.split("-")[0]: flag for name, flag in gated.items()} == {
        "read": False, "double": True, "astype": True, "write": False,
        "rechunk": False}  # the write's split of the model's one block: a getitem
    plan.run()
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "out.zarr"), mode="r")[:],
                                  np.arange(64).reshape(8, 8) * 2)
