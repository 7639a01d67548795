"""Reject: never delivers a batch at or below min_masked, nor one whose ensure_nonempty graph has
no node in its ROI; deterministic for a seed, bounded with a clear error, reject_probability
seeded."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.helpers import array_source, position_data
from tests.nodes.test_csv_points_source import write_csv

RAW, MASK = gp.ArrayKey("RAW"), gp.ArrayKey("MASK")
POINTS = gp.GraphKey("POINTS")
VOLUME = gp.Roi((0, 0, 0), (20, 40, 40))


def _pipeline(mask_data, **reject_kwargs):
    raw = np.arange(mask_data.size, dtype=np.float32).reshape(mask_data.shape)
    sources = (array_source(RAW, raw), array_source(MASK, mask_data)) + gp.MergeProvider()
    return sources + gp.RandomLocation() + gp.Reject(MASK, **reject_kwargs)


def _request(seed):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (4, 8, 8))
    request.add(MASK, (4, 8, 8))
    return request


def _mask():
    mask = np.zeros((8, 32, 32), np.uint8)
    mask[:, 10:20, 12:26] = 1
    return mask


def test_never_delivers_a_batch_at_or_below_min_masked_and_is_deterministic():
    with gp.build(_pipeline(_mask(), min_masked=0.6), scheduler="threads") as p:
        batches = [p.request_batch(_request(seed)) for seed in range(30)]
        again = p.request_batch(_request(7))
    ratios = [b[MASK].data.mean() for b in batches]
    assert min(ratios) > 0.6
    # The raw array is still aligned with the mask it was accepted for.
    offsets = {int(b[RAW].data[0, 0, 0]) for b in batches}
    assert len(offsets) > 10
    np.testing.assert_array_equal(again[RAW].data, batches[7][RAW].data)
    np.testing.assert_array_equal(again[MASK].data, batches[7][MASK].data)


def test_without_reject_most_of_these_locations_fail():
    pipeline = array_source(MASK, _mask()) + gp.RandomLocation()
    request = gp.BatchRequest(random_seed=0)
    request.add(MASK, (4, 8, 8))
    with gp.build(pipeline, scheduler="sync") as p:
        ratios = []
        for seed in range(30):
            request.random_seed = seed
            ratios.append(p.request_batch(request)[MASK].data.mean())
    assert sum(r > 0.6 for r in ratios) < 15


def test_empty_mask_ends_with_a_clear_error():
    pipeline = _pipeline(np.zeros((8, 32, 32), np.uint8), max_attempts=5)
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError,
                           match=r"Reject: no batch with a mean of MASK above min_masked=0.5 "
                                 r"in 5 attempts; the best ratio seen was 0.0000"):
            p.request_batch(_request(0))


def test_reject_probability_zero_accepts_the_first_batch():
    with gp.build(_pipeline(np.zeros((8, 32, 32), np.uint8), reject_probability=0.0),
                  scheduler="sync") as p:
        batch = p.request_batch(_request(0))
    assert batch[MASK].data.mean() == 0


def test_the_peek_computes_only_the_mask_and_the_batch_reuses_it():
    import dask.array as da

    computed = {"raw": 0, "mask": 0}

    def counting(name):
        def block(x):
            computed[name] += 1
            return x
        return block

    mask = _mask()
    raw = np.zeros(mask.shape, np.float32)
    def source(key, data):
        # meta given: dask does not call the function to guess it.
        lazy = da.from_array(data, chunks=-1).map_blocks(
            counting(str(key).lower()), meta=np.empty((0, 0, 0), data.dtype))
        return gp.ArraySource(key, lazy)

    sources = (source(RAW, raw), source(MASK, mask)) + gp.MergeProvider()
    pipeline = sources + gp.RandomLocation() + gp.Reject(MASK, min_masked=0.6)
    with gp.build(pipeline, scheduler="sync") as p:
        lazy = p.request_lazy_batch(_request(3))
        assert computed["raw"] == 0 and computed["mask"] >= 1
        peeks = computed["mask"]
        lazy.compute(scheduler="sync")
    assert computed == {"raw": 1, "mask": peeks}


# --- ensure_nonempty, with real graph sources -------------------------------------------------

def _sparse_points(tmp_path):
    """15 points in a 20x40x40 volume: most 4x8x8 windows hold none of them."""
    rng = np.random.default_rng(4)
    locations = rng.integers(0, (20, 40, 40), size=(15, 3)) + 0.5
    return write_csv(tmp_path / "points.csv", locations.tolist()), locations


def _graph_pipeline(points_source, *reject_args, **reject_kwargs):
    raw = array_source(RAW, position_data((20, 40, 40)))
    pipeline = (raw, points_source) + gp.MergeProvider() + gp.RandomLocation()
    if reject_args or reject_kwargs:
        pipeline += gp.Reject(*reject_args, **reject_kwargs)
    return pipeline


def _graph_request(seed, mask=False):
    request = gp.BatchRequest(random_seed=seed)
    request.add(RAW, (4, 8, 8))
    request.add(POINTS, (4, 8, 8))
    if mask:
        request.add(MASK, (4, 8, 8))
    return request


def _csv_source(path):
    return gp.CsvPointsSource(path, POINTS, [0, 1, 2], points_spec=gp.GraphSpec(roi=VOLUME))


def test_ensure_nonempty_never_delivers_an_empty_graph(tmp_path):
    path, locations = _sparse_points(tmp_path)
    with gp.build(_graph_pipeline(_csv_source(path)), scheduler="sync") as p:
        plain = [p.request_batch(_graph_request(seed))[POINTS] for seed in range(30)]
    assert sum(graph.num_vertices() == 0 for graph in plain) > 15  # the test can fail

    pipeline = _graph_pipeline(_csv_source(path), ensure_nonempty=POINTS)
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(30):
            request = _graph_request(seed)
            batch = p.request_batch(request)
            graph, raw = batch[POINTS], batch[RAW]
            assert graph.num_vertices() >= 1 and graph.spec.roi == request[POINTS].roi
            for point_id, location in zip(graph.ids, graph.locations, strict=True):
                assert request[POINTS].roi.contains(gp.Coordinate(np.floor(location)))
                # The raw array comes from the same (accepted) attempt as the points.
                voxel = tuple(np.floor(location - np.array(raw.spec.roi.begin)).astype(int))
                z, y, x = locations[point_id] - 0.5
                assert raw.data[voxel] == z * 10**8 + y * 10**4 + x


def test_ensure_nonempty_same_seed_same_batch(tmp_path):
    path, _ = _sparse_points(tmp_path)

    def run(scheduler, seeds):
        pipeline = _graph_pipeline(_csv_source(path), ensure_nonempty=POINTS)
        with gp.build(pipeline, scheduler=scheduler) as p:
            return [p.request_batch(_graph_request(seed)) for seed in seeds]

    first, again = run("sync", [3, 4, 5, 6]), run("threads", [3, 4, 5, 6])
    for a, b in zip(first, again, strict=True):
        assert a[POINTS] == b[POINTS]
        np.testing.assert_array_equal(a[RAW].data, b[RAW].data)
    assert len({int(b[RAW].data[0, 0, 0]) for b in first}) > 1  # the seed matters


def test_ensure_nonempty_with_an_empty_graph_fails_clearly():
    empty = gp.Graph(spec=gp.GraphSpec(roi=VOLUME))
    source = gp.GraphSource(POINTS, empty)
    pipeline = _graph_pipeline(source, ensure_nonempty=POINTS, max_attempts=7)
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError) as error:
            p.request_batch(_graph_request(0))
    message = str(error.value)
    assert message.startswith("Reject: no batch with a node of POINTS in the requested ROI [")
    assert message.endswith("in 7 attempts; 7 had no node of POINTS (from GraphSource)")


def test_ensure_nonempty_error_names_the_csv_file(tmp_path):
    # All points lie outside the region RandomLocation can reach (the raw ROI).
    path = write_csv(tmp_path / "outside.csv", [[30.5, 1.5, 1.5], [35.5, 2.5, 2.5]])
    points = gp.CsvPointsSource(path, POINTS, [0, 1, 2],
                                points_spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), (40, 40, 40))))
    pipeline = _graph_pipeline(points, ensure_nonempty=POINTS, max_attempts=4)
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.PipelineRequestError, match=r"4 had no node of POINTS") as error:
            p.request_batch(_graph_request(1))
    assert "outside.csv" in str(error.value)


def test_ensure_nonempty_and_min_masked_must_both_hold(tmp_path):
    rng = np.random.default_rng(1)
    locations = rng.integers(0, (20, 40, 40), size=(60, 3)) + 0.5
    path = write_csv(tmp_path / "points.csv", locations.tolist())
    mask = np.zeros((20, 40, 40), np.uint8)
    mask[:, :, :20] = 1
    sources = (array_source(RAW, position_data((20, 40, 40))), array_source(MASK, mask),
               _csv_source(path)) + gp.MergeProvider()
    pipeline = sources + gp.RandomLocation() + gp.Reject(MASK, min_masked=0.9,
                                                         ensure_nonempty=POINTS)
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(12):
            batch = p.request_batch(_graph_request(seed, mask=True))
            assert batch[POINTS].num_vertices() >= 1
            assert batch[MASK].data.mean() > 0.9
            assert batch[RAW].spec.roi == batch[MASK].spec.roi == batch[POINTS].spec.roi


def test_ensure_nonempty_reject_probability_zero_accepts_an_empty_graph():
    source = gp.GraphSource(POINTS, gp.Graph(spec=gp.GraphSpec(roi=VOLUME)))
    pipeline = _graph_pipeline(source, ensure_nonempty=POINTS, reject_probability=0.0)
    with gp.build(pipeline, scheduler="sync") as p:
        assert p.request_batch(_graph_request(0))[POINTS].num_vertices() == 0


def test_ensure_nonempty_key_must_be_a_provided_requested_graph(tmp_path):
    with pytest.raises(gp.PipelineSetupError, match="must be a GraphKey"):
        gp.Reject(ensure_nonempty=RAW)
    raw = array_source(RAW, position_data((20, 40, 40)))
    with pytest.raises(gp.PipelineSetupError,
                       match="asked to reject batches without a node of POINTS, which is "
                             "not provided upstream"):
        with gp.build(raw + gp.Reject(ensure_nonempty=POINTS)):
            pass
    path, _ = _sparse_points(tmp_path)
    request = gp.BatchRequest(random_seed=0)
    request.add(RAW, (4, 8, 8))
    with gp.build(_graph_pipeline(_csv_source(path), ensure_nonempty=POINTS)) as p:
        with pytest.raises(gp.PipelineRequestError,
                           match="rejects batches by POINTS, but the request does not"):
            p.request_batch(request)
