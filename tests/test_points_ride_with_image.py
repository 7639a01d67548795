"""Points ride with the image: blobs at the points of a CSV file stay under their points
through RandomLocation(ensure_nonempty) + ElasticAugment + SimpleAugment + RasterizeGraph."""

import math

import numpy as np
import pytest
from scipy import ndimage

import daskgp as gp
from tests.nodes.test_csv_points_source import write_csv

RAW = gp.ArrayKey("RAW")
POINTS = gp.GraphKey("POINTS")
RASTER = gp.ArrayKey("RASTER")
SHAPE = (40, 100, 100)


def blob_volume(tmp_path, n_points=40, seed=0, sigma=1.5, spacing=8):
    """A raw volume with a Gaussian blob (peak 1) centred on each point of a CSV file."""
    rng = np.random.default_rng(seed)
    chosen = []
    while len(chosen) < n_points:  # points at voxel centres, ``spacing`` voxels apart
        candidate = rng.integers(3, np.array(SHAPE) - 3)
        if all(np.abs(candidate - c).max() >= spacing for c in chosen):
            chosen.append(candidate)
    voxels = np.array(chosen)
    impulses = np.zeros(SHAPE, np.float32)
    impulses[tuple(voxels.T)] = 1
    raw = ndimage.gaussian_filter(impulses, sigma, mode="constant")
    raw /= raw.max()
    path = write_csv(tmp_path / "points.csv", (voxels + 0.5).tolist(), header="z,y,x")
    return raw, path, voxels


def points_source(path):
    spec = gp.GraphSpec(roi=gp.Roi((0, 0, 0), SHAPE))  # the CSV's bounding box is smaller
    return gp.CsvPointsSource(path, POINTS, [0, 1, 2], points_spec=spec)


def pipeline_for(raw, path):
    source = (gp.ArraySource(RAW, raw), points_source(path))
    return (source + gp.MergeProvider() + gp.RandomLocation(ensure_nonempty=POINTS)
            + gp.ElasticAugment([4, 20, 20], [0, 1, 1], [0, math.pi / 2], chunk_shape=32)
            + gp.SimpleAugment(transpose_only=[1, 2])
            + gp.RasterizeGraph(POINTS, RASTER, settings=gp.RasterizationSettings(1)))


def request_for(seed):
    request = gp.BatchRequest(random_seed=seed)
    for key in (RAW, POINTS, RASTER):
        request.add(key, (16, 48, 48))
    return request


def test_every_point_sits_on_its_blob_and_is_painted(tmp_path):
    raw, path, _ = blob_volume(tmp_path)
    checked = 0
    with gp.build(pipeline_for(raw, path), scheduler="threads") as p:
        for seed in range(12):
            batch = p.request_batch(request_for(seed))
            graph, data, raster = batch[POINTS], batch[RAW].data, batch[RASTER].data
            assert graph.num_vertices() >= 1, f"batch {seed} has no point"
            begin = np.array(batch[RAW].spec.roi.begin)
            for location in graph.locations:
                voxel = np.floor(location - begin).astype(int)
                assert raster[tuple(voxel)] == 1
                near = tuple(slice(max(v - 1, 0), v + 2) for v in voxel)
                window = tuple(slice(max(v - 3, 0), v + 4) for v in voxel)
                assert data[near].max() == data[window].max(), (seed, location)
                assert data[near].max() > 0.5  # on a blob, not on the background
                checked += 1
    assert checked >= 12


def test_point_follows_the_warped_blob_within_half_a_voxel(tmp_path):
    raw, path, _ = blob_volume(tmp_path, n_points=12, seed=3, sigma=1.5, spacing=14)
    source = (gp.ArraySource(RAW, raw), points_source(path))
    pipeline = source + gp.MergeProvider() + gp.ElasticAugment(
        [4, 20, 20], [0, 1, 1], [0, math.pi / 2])
    errors = []
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(8):
            request = gp.BatchRequest(random_seed=seed)
            request[RAW] = gp.ArraySpec(roi=gp.Roi((8, 20, 20), (24, 60, 60)))
            request[POINTS] = gp.GraphSpec(roi=gp.Roi((8, 20, 20), (24, 60, 60)))
            batch = p.request_batch(request)
            data, begin = batch[RAW].data, np.array(request[RAW].roi.begin)
            for location in batch[POINTS].locations:
                center = location - begin - 0.5  # voxel-centre coordinates
                lo = np.floor(center).astype(int) - 5
                if np.any(lo < 0) or np.any(lo + 11 > np.array(data.shape)):
                    continue  # the blob is cut by the ROI: its centroid would be biased
                window = data[tuple(slice(a, a + 11) for a in lo)].astype(np.float64)
                weights = np.where(window > 0.05, window, 0)
                grids = np.meshgrid(*(np.arange(a, a + 11) for a in lo), indexing="ij")
                centroid = np.array([(g * weights).sum() for g in grids]) / weights.sum()
                errors.append(np.abs(centroid - center).max())
    assert len(errors) >= 12
    assert max(errors) < 0.5, errors


def test_same_batch_on_every_scheduler(tmp_path, scheduler):
    raw, path, _ = blob_volume(tmp_path, n_points=20)

    def run(on):
        with gp.build(pipeline_for(raw, path), scheduler=on) as p:
            return p.request_batch(request_for(5))

    expected, got = run("sync"), run(scheduler)
    assert got[POINTS] == expected[POINTS] and got[POINTS].num_vertices() >= 1
    for key in (RAW, RASTER):
        np.testing.assert_array_equal(got[key].data, expected[key].data)


@pytest.mark.parametrize("bad", ["far"])
def test_graph_only_request_through_elastic_augment_is_a_clear_error(tmp_path, bad):
    raw, path, _ = blob_volume(tmp_path, n_points=5)
    source = (gp.ArraySource(RAW, raw), gp.CsvPointsSource(path, POINTS, [0, 1, 2]))
    pipeline = source + gp.MergeProvider() + gp.ElasticAugment([4, 20, 20], [0, 1, 1], [0, 1])
    request = gp.BatchRequest(random_seed=0)
    request[POINTS] = gp.GraphSpec(roi=gp.Roi((8, 20, 20), (10, 10, 10)))
    with gp.build(pipeline, scheduler="sync") as p:
        with pytest.raises(gp.DaskgpError, match="without any spatial array"):
            p.request_batch(request)


@pytest.mark.parametrize("augment", [
    lambda: gp.DeformAugment((4, 20, 20), (0, 1, 1), rotation_axes=(1, 2), chunk_shape=32),
    lambda: gp.ElasticAugment([4, 20, 20], [0, 1, 1], [0, math.pi / 2], prob_slip=0.2,
                              prob_shift=0.2, max_misalign=3),
], ids=["DeformAugment", "ElasticAugment-misaligned"])
def test_points_stay_on_their_blobs(tmp_path, augment):
    raw, path, _ = blob_volume(tmp_path)
    source = (gp.ArraySource(RAW, raw), points_source(path))
    pipeline = source + gp.MergeProvider() + augment()
    seen = 0
    with gp.build(pipeline, scheduler="sync") as p:
        for seed in range(4):
            request = gp.BatchRequest(random_seed=seed)
            request[RAW] = gp.ArraySpec(roi=gp.Roi((8, 20, 20), (24, 60, 60)))
            request[POINTS] = gp.GraphSpec(roi=gp.Roi((8, 20, 20), (24, 60, 60)))
            batch = p.request_batch(request)
            data, begin = batch[RAW].data, np.array(request[RAW].roi.begin)
            for location in batch[POINTS].locations:
                voxel = np.floor(location - begin).astype(int)
                near = tuple(slice(max(v - 1, 0), v + 2) for v in voxel)
                window = tuple(slice(max(v - 3, 0), v + 4) for v in voxel)
                assert data[near].max() == data[window].max() > 0.5, (seed, location)
                seen += 1
    assert seen >= 10
