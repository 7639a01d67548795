"""Run the must-show "points ride with the image" pipeline in gunpowder 1.5.0 on the same data
as tests/test_points_ride_with_image.py, and record how often its points sit on their blobs.

Run with gunpowder's Python: /work/venvs/gp15/bin/python gp_points_ride.py
Writes gp_points_ride.json beside this script (a reference for the daskgp test, which requires
every point on its blob).
"""

import json
import math
import tempfile
from pathlib import Path

import gunpowder as gp
import numpy as np
from scipy import ndimage

SHAPE = (40, 100, 100)


def blob_volume(directory, n_points=40, seed=0, sigma=1.5, spacing=8):
    # The same construction as tests/test_points_ride_with_image.py::blob_volume.
    rng = np.random.default_rng(seed)
    chosen = []
    while len(chosen) < n_points:
        candidate = rng.integers(3, np.array(SHAPE) - 3)
        if all(np.abs(candidate - c).max() >= spacing for c in chosen):
            chosen.append(candidate)
    voxels = np.array(chosen)
    impulses = np.zeros(SHAPE, np.float32)
    impulses[tuple(voxels.T)] = 1
    raw = ndimage.gaussian_filter(impulses, sigma, mode="constant")
    raw /= raw.max()
    path = Path(directory) / "points.csv"
    path.write_text("z,y,x\n" + "\n".join(",".join(str(v) for v in row)
                                          for row in (voxels + 0.5).tolist()) + "\n")
    return raw, path


def main():
    raw_key, points, raster = gp.ArrayKey("RAW"), gp.GraphKey("POINTS"), gp.ArrayKey("RASTER")
    with tempfile.TemporaryDirectory() as tmp:
        raw, path = blob_volume(tmp)
        from funlib.persistence import Array as PersistenceArray

        array = PersistenceArray(raw, offset=(0, 0, 0), voxel_size=(1, 1, 1))
        source = (gp.ArraySource(raw_key, array, interpolatable=True),
                  gp.CsvPointsSource(str(path), points, [0, 1, 2],
                                     points_spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), SHAPE))))
        pipeline = (source + gp.MergeProvider() + gp.RandomLocation(ensure_nonempty=points)
                    + gp.ElasticAugment([4, 20, 20], [0, 1, 1], [0, math.pi / 2])
                    + gp.SimpleAugment(transpose_only=[1, 2])
                    + gp.RasterizeGraph(points, raster, settings=gp.RasterizationSettings(1)))
        on_blob = painted = total = empty = 0
        with gp.build(pipeline):
            for seed in range(12):
                request = gp.BatchRequest(random_seed=seed)
                for key in (raw_key, points, raster):
                    request.add(key, (16, 48, 48))
                batch = pipeline.request_batch(request)
                data, begin = batch[raw_key].data, np.array(batch[raw_key].spec.roi.begin)
                nodes = list(batch[points].nodes)
                empty += not nodes
                for node in nodes:
                    voxel = np.floor(node.location - begin).astype(int)
                    if np.any(voxel < 0) or np.any(voxel >= data.shape):
                        continue
                    near = tuple(slice(max(v - 1, 0), v + 2) for v in voxel)
                    window = tuple(slice(max(v - 3, 0), v + 4) for v in voxel)
                    total += 1
                    on_blob += bool(data[near].max() == data[window].max() > 0.5)
                    painted += bool(batch[raster].data[tuple(voxel)] > 0)
    result = {"gunpowder": "1.5.0", "batches": 12, "empty_batches": empty, "points": total,
              "on_blob": on_blob, "painted": painted}
    Path(__file__).with_name("gp_points_ride.json").write_text(json.dumps(result, indent=1))
    print(result)


if __name__ == "__main__":
    main()
