"""Make gunpowder 1.5.0's outputs for fixed graphs: Graph.crop/trim and RasterizeGraph.

Run with gunpowder's own Python: /work/venvs/gp15/bin/python make_gp_graph_fixtures.py
Writes gp_graph_fixtures.json beside this script.
"""

import json
from pathlib import Path

import gunpowder as gp
import numpy as np


def graph_fixture():
    rng = np.random.default_rng(7)
    locations = rng.uniform(0, 20, size=(30, 3)).round(2)
    edges = [(i, i + 1) for i in range(0, 29) if i % 6 != 5] + [(0, 12), (3, 25)]
    return locations, edges


def dump(graph):
    return {
        "nodes": sorted(
            [[int(n.id), [float(x) for x in n.location], bool(n.temporary)] for n in graph.nodes]
        ),
        "edges": sorted([[int(e.u), int(e.v)] for e in graph.edges]),
        "roi": [list(graph.spec.roi.begin), list(graph.spec.roi.shape)],
    }


def crop_trim():
    locations, edges = graph_fixture()
    out = {"locations": locations.tolist(), "edges": edges, "cases": []}
    for begin, shape in [((5, 5, 5), (10, 10, 10)), ((0, 0, 0), (8, 20, 20)),
                         ((2, 3, 4), (7, 6, 9))]:
        graph = gp.Graph(
            [gp.Node(i, np.array(loc, dtype=np.float32)) for i, loc in enumerate(locations)],
            [gp.Edge(u, v) for u, v in edges],
            gp.GraphSpec(roi=gp.Roi((0, 0, 0), (20, 20, 20)), directed=False),
        )
        roi = gp.Roi(begin, shape)
        cropped = graph.crop(roi)
        trimmed = cropped.trim(roi)
        out["cases"].append({"roi": [list(begin), list(shape)], "crop": dump(cropped),
                             "trim": dump(trimmed)})
    return out


def rasterize():
    """RasterizeGraph of three points (no edges): gunpowder's fast ball path."""
    points, raster = gp.GraphKey("POINTS"), gp.ArrayKey("RASTER")
    locations = np.array([[10.5, 20.5, 20.5], [30.5, 41.5, 10.5], [14.5, 22.5, 24.5]],
                         dtype=np.float32)
    graph = gp.Graph([gp.Node(i, loc) for i, loc in enumerate(locations)], [],
                     gp.GraphSpec(roi=gp.Roi((0, 0, 0), (48, 64, 64))))
    cases = []
    for radius, voxel_size in [((4, 6, 6), (2, 2, 2)), ((2, 3, 3), (1, 1, 1))]:
        source = _InMemory(points, graph)
        pipeline = source + gp.RasterizeGraph(
            points, raster,
            array_spec=gp.ArraySpec(voxel_size=gp.Coordinate(voxel_size), dtype=np.uint8),
            settings=gp.RasterizationSettings(radius=radius, mode="ball"))
        request = gp.BatchRequest()
        request[raster] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (48, 64, 64)))
        with gp.build(pipeline):
            batch = pipeline.request_batch(request)
        data = batch[raster].data
        cases.append({"radius": list(radius), "voxel_size": list(voxel_size),
                      "foreground": np.argwhere(data > 0).tolist()})
    return {"locations": locations.tolist(), "cases": cases}


class _InMemory(gp.BatchProvider):
    def __init__(self, key, graph):
        self.key, self.graph = key, graph

    def setup(self):
        self.provides(self.key, self.graph.spec.copy())

    def provide(self, request):
        batch = gp.Batch()
        batch[self.key] = self.graph.crop(request[self.key].roi)
        return batch


if __name__ == "__main__":
    result = {"gunpowder": "1.5.0", "crop_trim": crop_trim(), "rasterize": rasterize()}
    path = Path(__file__).with_name("gp_graph_fixtures.json")
    path.write_text(json.dumps(result))
    print("wrote", path)
