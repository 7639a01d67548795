"""RandomLocation with graphs: ensure_nonempty, ensure_centered, point balancing, errors."""

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data
from tests.nodes.test_csv_points_source import write_csv

RAW = gp.ArrayKey("RAW")
POINTS = gp.GraphKey("POINTS")


def _pipeline(path, **kwargs):
    raw = array_source(RAW, position_data((20, 40, 40)))
    points = gp.CsvPointsSource(path, POINTS, [0, 1, 2])
    return (raw, points) + gp.MergeProvider() + gp.RandomLocation(ensure_nonempty=POINTS,
                                                                  **kwargs)


def _request(seed, graph_shape=(6, 10, 10)):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (6, 10, 10))
    request.add(POINTS, graph_shape)
    return request


def _points(tmp_path, n=12, seed=0):
    rng = np.random.default_rng(seed)
    locations = rng.integers(0, (20, 40, 40), size=(n, 3)) + 0.5
    return write_csv(tmp_path / "points.csv", locations.tolist()), locations


def test_every_batch_has_a_point_that_moves_with_the_array(tmp_path):
    path, locations = _points(tmp_path)
    with gp.build(_pipeline(path), scheduler="sync") as p:
        for seed in range(10):
            batch = p.request_batch(_request(seed))
            graph, raw = batch[POINTS], batch[RAW]
            assert graph.num_vertices() >= 1
            assert graph.spec.roi == _request(seed)[POINTS].roi
            for point_id, location in zip(graph.ids, graph.locations, strict=True):
                # The raw value under the point encodes where the point is in the source.
                voxel = tuple(np.floor(location - np.array(raw.spec.roi.begin)).astype(int))
                z, y, x = locations[point_id] - 0.5
                assert raw.data[voxel] == z * 10**8 + y * 10**4 + x


def test_ensure_centered_puts_a_point_at_the_centre(tmp_path):
    path, _ = _points(tmp_path)
    with gp.build(_pipeline(path, ensure_centered=True), scheduler="sync") as p:
        for seed in range(5):
            graph = p.request_batch(_request(seed))[POINTS]
            center = np.array(graph.spec.roi.center)
            distance = np.abs(graph.locations - center).max(axis=1).min()
            assert distance <= 1.0


def test_point_balance_radius_evens_out_clusters(tmp_path):
    cluster = [[10.5, 20.5, 20.5 + 0.1 * i] for i in range(9)]
    lonely = [[10.5, 5.5, 5.5]]
    path = write_csv(tmp_path / "points.csv", cluster + lonely)

    def lonely_fraction(radius):
        hits = 0
        pipeline = _pipeline(path, point_balance_radius=radius)
        with gp.build(pipeline, scheduler="sync") as p:
            for seed in range(60):
                graph = p.request_batch(_request(seed, graph_shape=(2, 2, 2)))[POINTS]
                hits += 9 in graph.ids.tolist()
        return hits / 60

    assert lonely_fraction(1) < 0.3       # uniform: 1 in 10
    assert 0.3 < lonely_fraction(5) < 0.7  # balanced: the cluster counts as one point


def test_no_point_in_provided_roi_names_key_and_file(tmp_path):
    path = write_csv(tmp_path / "far.csv", [[1, 1, 1]])
    raw = array_source(RAW, position_data((20, 40, 40)))
    points = gp.CsvPointsSource(path, POINTS, [0, 1, 2],
                                points_spec=gp.GraphSpec(roi=gp.Roi((5, 5, 5), (10, 10, 10))))
    pipeline = (raw, points) + gp.MergeProvider() + gp.RandomLocation(ensure_nonempty=POINTS)
    with pytest.raises(gp.PipelineSetupError, match="POINTS has no point") as error:
        with gp.build(pipeline, scheduler="sync"):
            pass
    assert "far.csv" in str(error.value)


def test_points_that_cannot_be_placed_fail_after_max_attempts(tmp_path):
    # The points sit where no 6x10x10 request inside the cropped raw ROI can contain them.
    path = write_csv(tmp_path / "edge.csv", [[0.5, 0.5, 39.5], [1.5, 1.5, 38.5]])
    raw = array_source(RAW, position_data((20, 40, 40)))
    raw_crop = gp.Crop(RAW, gp.Roi((0, 10, 0), (20, 30, 30)))
    points = gp.CsvPointsSource(path, POINTS, [0, 1, 2],
                                points_spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), (20, 40, 40))))
    pipeline = ((raw + raw_crop, points) + gp.MergeProvider()
                + gp.RandomLocation(ensure_nonempty=POINTS, max_attempts=20))
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match="none of the 20 points") as error:
            p.request_batch(_request(0))
    assert "edge.csv" in str(error.value)


def test_same_batch_on_every_scheduler(tmp_path, scheduler):
    path, _ = _points(tmp_path)

    def run(on):
        with gp.build(_pipeline(path), scheduler=on) as p:
            batch = p.request_batch(_request(3))
        return batch[RAW].data, batch[POINTS]

    (raw_a, graph_a), (raw_b, graph_b) = run("sync"), run(scheduler)
    np.testing.assert_array_equal(raw_a, raw_b)
    assert graph_a == graph_b


def test_ensure_nonempty_with_min_masked(tmp_path):
    path, _ = _points(tmp_path, n=30)
    mask_key = gp.ArrayKey("MASK")
    mask = np.zeros((20, 40, 40), np.uint8)
    mask[:, :, :20] = 1
    raw = array_source(RAW, position_data((20, 40, 40)))
    sources = (raw, array_source(mask_key, mask), gp.CsvPointsSource(path, POINTS, [0, 1, 2]))
    pipeline = sources + gp.MergeProvider() + gp.RandomLocation(
        ensure_nonempty=POINTS, min_masked=0.9, mask=mask_key)
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(6):
            request = _request(seed)
            request.add(mask_key, (6, 10, 10))
            batch = p.request_batch(request)
            assert batch[POINTS].num_vertices() >= 1
            assert batch[mask_key].data.mean() >= 0.9
