"""RasterizeGraph: gunpowder's balls for fixed points, lazy per chunk, tubes, rings, peaks."""

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from daskgp.transforms._raster import raster_block

POINTS = gp.GraphKey("POINTS")
RASTER = gp.ArrayKey("RASTER")
MASK = gp.ArrayKey("MASK")
FIXTURES = json.loads((Path(__file__).parents[1] / "data" / "graphs"
                       / "gp_graph_fixtures.json").read_text())["rasterize"]


def _rasterize(graph, roi, settings, voxel_size=(1, 1, 1), chunk_shape=64, extra=None):
    source = gp.GraphSource(POINTS, graph)
    if extra is not None:
        source = (source, extra) + gp.MergeProvider()
    pipeline = source + gp.RasterizeGraph(
        POINTS, RASTER, gp.ArraySpec(voxel_size=gp.Coordinate(voxel_size)), settings,
        chunk_shape=chunk_shape)
    request = gp.BatchRequest()
    request[RASTER] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline, scheduler="sync") as p:
        lazy = p.request_lazy_batch(request)[RASTER].data
        return lazy, np.asarray(lazy.compute())


@pytest.mark.parametrize("case", FIXTURES["cases"], ids=lambda c: str(c["voxel_size"]))
def test_balls_equal_gunpowder(case):
    roi = gp.Roi((0, 0, 0), (48, 64, 64))
    graph = gp.Graph.from_arrays(np.arange(3), FIXTURES["locations"], spec=gp.GraphSpec(roi=roi))
    settings = gp.RasterizationSettings(radius=case["radius"], mode="ball")
    lazy, data = _rasterize(graph, roi, settings, case["voxel_size"], chunk_shape=8)
    assert isinstance(lazy, da.Array) and lazy.npartitions > 8 and data.dtype == np.uint8
    assert np.argwhere(data > 0).tolist() == case["foreground"]


def test_chunks_draw_only_nearby_points_and_results_do_not_depend_on_chunking(monkeypatch):
    rng = np.random.default_rng(1)
    roi = gp.Roi((0, 0, 0), (32, 32, 32))
    graph = gp.Graph.from_arrays(np.arange(20), rng.uniform(0, 32, (20, 3)),
                                 spec=gp.GraphSpec(roi=roi))
    settings = gp.RasterizationSettings(radius=(2, 3, 3))
    _, whole = _rasterize(graph, roi, settings, chunk_shape=32)
    carried = []

    def recording(begin, shape, points, *args):
        carried.append(len(points))
        return raster_block(begin, shape, points, *args)

    monkeypatch.setattr("daskgp.nodes.rasterize_graph.raster_block", recording)
    _, chunked = _rasterize(graph, roi, settings, chunk_shape=(8, 16, 5))
    np.testing.assert_array_equal(whole, chunked)
    # 28 chunks, each drawing only the points that can reach it.
    assert len(carried) == 4 * 2 * 7 and max(carried) < 20 and sum(carried) < 20 * 28 / 2


def test_edges_are_tubes_and_rings_are_hollow():
    roi = gp.Roi((0, 0), (20, 20))
    graph = gp.Graph.from_arrays([1, 2], [[10.5, 2.5], [10.5, 17.5]], [[1, 2]],
                                 gp.GraphSpec(roi=roi))
    _, tube = _rasterize(graph, roi, gp.RasterizationSettings(radius=2), voxel_size=(1, 1))
    assert tube[10, 2:18].all() and tube[8:13, 10].all() and not tube[7, 10] and \
        not tube[13, 10]
    ring = gp.RasterizationSettings(radius=4, edges=False, inner_radius_fraction=0.5,
                                    fg_value=7)
    _, rings = _rasterize(graph, roi, ring, voxel_size=(1, 1))
    assert rings[10, 2] == 0 and rings[10, 5] == 7 and rings[10, 6] == 7 and rings[10, 7] == 0
    assert set(np.unique(rings)) == {0, 7}


def test_peaks_and_colors():
    roi = gp.Roi((0, 0), (16, 16))
    graph = gp.Graph.from_arrays([1, 2], [[4.5, 4.5], [11.5, 11.5]], spec=gp.GraphSpec(roi=roi))
    _, peaks = _rasterize(graph, roi, gp.RasterizationSettings(radius=2, mode="peak"),
                          voxel_size=(1, 1))
    assert peaks.dtype == np.float32 and peaks[4, 4] == 1.0
    np.testing.assert_allclose(peaks[4, 6], np.exp(-0.5), rtol=1e-6)
    graph.node(1).color = 3
    graph.node(2).color = 5
    colored = gp.RasterizationSettings(radius=1, color_attr="color")
    _, labels = _rasterize(graph, roi, colored, voxel_size=(1, 1))
    assert labels[4, 4] == 3 and labels[11, 11] == 5 and labels[4, 5] == 3


def test_mask_keeps_balls_inside_their_object():
    roi = gp.Roi((0, 0), (16, 16))
    labels = np.zeros((16, 16), np.uint64)
    labels[:, :8] = 1
    labels[:, 8:] = 2
    mask_source = gp.ArraySource(MASK, labels)
    graph = gp.Graph.from_arrays([1], [[8.5, 6.5]], spec=gp.GraphSpec(roi=roi))
    settings = gp.RasterizationSettings(radius=3, mask=MASK)
    _, data = _rasterize(graph, roi, settings, voxel_size=(1, 1), extra=mask_source)
    assert data[8, 6] == 1 and data[8, 3] == 1 and data[8, 8:].sum() == 0
