"""CsvPointsSource and GraphSource: points by ROI through the index, errors naming file+line."""

import numpy as np
import pytest

import daskgp as gp

POINTS = gp.GraphKey("POINTS")


def write_csv(path, rows, header=None):
    lines = ([header] if header else []) + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_points_in_roi_with_scale_ids_and_header(tmp_path):
    rows = [(1, 2, 3, 10), (4, 5, 6, 11), (7, 8, 9, 12)]
    path = write_csv(tmp_path / "p.csv", rows, header="z,y,x,id")
    source = gp.CsvPointsSource(path, POINTS, [0, 1, 2], scale=(2, 1, 1), id_col=3)
    request = gp.BatchRequest()
    request[POINTS] = gp.GraphSpec(roi=gp.Roi((2, 2, 3), (8, 4, 4)))
    with gp.build(source, scheduler="sync") as p:
        assert p.spec[POINTS].roi == gp.Roi((2, 2, 3), (13, 7, 7))  # floor(min)..ceil(max)+1
        graph = p.request_batch(request)[POINTS]
    assert graph.ids.tolist() == [10, 11]
    assert graph.locations.tolist() == [[2.0, 2.0, 3.0], [8.0, 5.0, 6.0]]
    assert graph.spec.roi == request[POINTS].roi and graph.locations.dtype == np.float32


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("1,2,3\n4,nan,6\n", r"line 2 \(points of POINTS\), column 1: coordinate 'nan'"),
    ("1,2,3\n4,5\n", r"line 2 \(points of POINTS\) has 2 columns"),
    ("1,2,3\n4,x,6\n7,8,9\n", r"line 2 \(points of POINTS\), column 1: 'x' is not a number"),
])
def test_bad_csv_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(gp.SourceError, match=message) as error:
        with gp.build(gp.CsvPointsSource(path, POINTS, [0, 1, 2]), scheduler="sync"):
            pass
    assert str(path) in str(error.value) and "POINTS" in str(error.value)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(gp.SourceError, match=r"missing\.csv"):
        with gp.build(gp.CsvPointsSource(tmp_path / "missing.csv", POINTS, [0, 1, 2])):
            pass


def test_graph_source_keeps_edges_and_dangling_nodes():
    graph = gp.Graph.from_arrays([1, 2, 3], [[1.0, 1.0], [1.0, 8.0], [9.0, 9.0]], [[1, 2], [2, 3]],
                                 gp.GraphSpec(roi=gp.Roi((0, 0), (10, 10)), directed=False))
    request = gp.BatchRequest()
    request[POINTS] = gp.GraphSpec(roi=gp.Roi((0, 0), (5, 5)))
    with gp.build(gp.GPGraphSource(POINTS, graph), scheduler="sync") as p:
        out = p.request_batch(request)[POINTS]
    assert out.ids.tolist() == [1, 2] and out.edge_array.tolist() == [[1, 2]]
    assert not out.directed
