"""Graph cost per batch on a 1 GB vs a 1 TB zarr volume: plan+build time and task count.

Principle 3 of daskgp: cost proportional to the batch, never to the volume. Both volumes are
never-written zarr arrays (fill value), so creating them costs nothing; the seed's request
(raw 84x268x268, gt and mask 56^3) is planned and built repeatedly on each.

The points line: ``RandomLocation(ensure_nonempty=points)`` over 10^3 and 10^6 points (a
``GraphSource`` merged with the 1 GB volume); plan+build time per request must stay within 2x
(the source answers each request through its spatial index; all points are read once, at
setup, which is reported separately).

Run: python -m benchmarks.graph_overhead [--batches 50] [--points-batches 50] [--quick]
     [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import zarr

import daskgp as gp

VOLUMES = {"1GB": (1000, 1000, 1000), "1TB": (10000, 10000, 10000)}
CHUNKS = (64, 128, 128)


def make_volume(path: Path, shape) -> None:
    root = zarr.open_group(str(path), mode="w", zarr_format=3)
    for name, dtype in [("volumes/raw", "uint8"), ("volumes/labels/neuron_ids", "uint64"),
                        ("volumes/labels/mask", "uint8")]:
        array = root.create_array(name, shape=shape, chunks=CHUNKS, dtype=dtype, fill_value=0)
        array.attrs.update(resolution=[1, 1, 1], offset=[0, 0, 0])


def seed_pipeline(path: Path, raw, gt, mask):
    source = gp.ZarrSource(str(path), {raw: "volumes/raw", gt: "volumes/labels/neuron_ids",
                                       mask: "volumes/labels/mask"})
    pipeline = source + gp.Normalize(raw) + gp.RandomLocation()
    augmented = []
    if hasattr(gp, "ElasticAugment"):
        pipeline = pipeline + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
        augmented.append("ElasticAugment")
    if hasattr(gp, "SimpleAugment"):
        pipeline = pipeline + gp.SimpleAugment(transpose_only=[1, 2])
        augmented.append("SimpleAugment")
    if hasattr(gp, "IntensityAugment"):
        pipeline = pipeline + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
        augmented.append("IntensityAugment")
    return pipeline, augmented


def measure(path: Path, batches: int) -> dict:
    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    pipeline, augmented = seed_pipeline(path, raw, gt, mask)
    request = gp.BatchRequest()
    request.add(raw, (84, 268, 268))
    request.add(gt, (56, 56, 56))
    request.add(mask, (56, 56, 56))
    build_ms, optimize_ms, tasks = [], [], []
    with gp.build(pipeline, scheduler="sync", seed=0) as p:
        for i in range(batches + 3):
            start = time.perf_counter()
            batch = p.request_lazy_batch(request)
            built = time.perf_counter()
            arrays = dask.optimize(*(a.data for a in batch.arrays.values()))
            count = len({k for a in arrays for k in dict(a.__dask_graph__())})
            done = time.perf_counter()
            if i >= 3:  # warm-up: imports, first zarr open
                build_ms.append(1e3 * (built - start))
                optimize_ms.append(1e3 * (done - built))
                tasks.append(count)
    return {
        "nodes": ["ZarrSource", "Normalize", "RandomLocation", *augmented],
        "plan_build_ms": {"median": statistics.median(build_ms), "min": min(build_ms),
                          "max": max(build_ms)},
        "optimize_ms": {"median": statistics.median(optimize_ms), "min": min(optimize_ms),
                        "max": max(optimize_ms)},
        "tasks": {"median": statistics.median(tasks), "min": min(tasks), "max": max(tasks)},
    }


POINT_COUNTS = (10**3, 10**6)


def measure_points(path: Path, shape, n_points: int, batches: int) -> dict:
    """Plan+build time per request of ``RandomLocation(ensure_nonempty=points)``."""
    raw, points = gp.ArrayKey("RAW"), gp.GraphKey("POINTS")
    rng = np.random.default_rng(0)
    locations = rng.uniform(0, shape, size=(n_points, 3)).astype(np.float32)
    graph = gp.Graph.from_arrays(np.arange(n_points), locations,
                                 spec=gp.GraphSpec(roi=gp.Roi((0, 0, 0), shape)))
    source = (gp.ZarrSource(str(path), {raw: "volumes/raw"}), gp.GraphSource(points, graph))
    pipeline = source + gp.MergeProvider() + gp.RandomLocation(ensure_nonempty=points)
    request = gp.BatchRequest()
    request.add(raw, (84, 268, 268))
    request.add(points, (84, 268, 268))
    plan_ms, counts = [], []
    start = time.perf_counter()
    with gp.build(pipeline, scheduler="sync", seed=0) as p:
        setup_ms = 1e3 * (time.perf_counter() - start)
        for i in range(batches + 3):
            start = time.perf_counter()
            batch = p.request_lazy_batch(request)
            elapsed = time.perf_counter() - start
            if i >= 3:
                plan_ms.append(1e3 * elapsed)
                counts.append(batch[points].num_vertices())
    return {"points": n_points, "setup_ms": setup_ms,
            "plan_build_ms": {"median": statistics.median(plan_ms), "min": min(plan_ms),
                              "max": max(plan_ms)},
            "points_per_batch": {"median": statistics.median(counts), "min": min(counts)}}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].bar(names, [results[n]["plan_build_ms"]["median"] for n in names],
                label="plan+build")
    axes[0].bar(names, [results[n]["optimize_ms"]["median"] for n in names],
                bottom=[results[n]["plan_build_ms"]["median"] for n in names], label="optimize")
    axes[0].set_ylabel("ms per batch (median)")
    axes[0].legend()
    axes[1].bar(names, [results[n]["tasks"]["median"] for n in names])
    axes[1].set_ylabel("tasks per batch (optimized graph)")
    fig.suptitle("daskgp graph cost per batch: 1 GB vs 1 TB zarr volume")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--points-batches", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="10 batches each")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        args.batches = args.points_batches = 10
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, shape in VOLUMES.items():
            path = Path(tmp) / f"{name}.zarr"
            make_volume(path, shape)
            results[name] = {"shape": shape, **measure(path, args.batches)}
        shape = VOLUMES["1GB"]
        points = {str(n): measure_points(Path(tmp) / "1GB.zarr", shape, n, args.points_batches)
                  for n in POINT_COUNTS}
    small, large = results["1GB"], results["1TB"]
    ratio_time = large["plan_build_ms"]["median"] / small["plan_build_ms"]["median"]
    ratio_opt = large["optimize_ms"]["median"] / small["optimize_ms"]["median"]
    ratio_tasks = large["tasks"]["median"] / small["tasks"]["median"]
    for name, r in results.items():
        print(f"{name:>4} {r['shape']}: plan+build {r['plan_build_ms']['median']:.1f} ms "
              f"(min {r['plan_build_ms']['min']:.1f}, max {r['plan_build_ms']['max']:.1f}), "
              f"optimize {r['optimize_ms']['median']:.1f} ms, tasks {r['tasks']['median']:.0f}")
    print(f"nodes: {' + '.join(small['nodes'])}")
    print(f"ratio 1TB/1GB: plan+build {ratio_time:.2f}x, optimize {ratio_opt:.2f}x, "
          f"tasks {ratio_tasks:.2f}x")
    few, many = (points[str(n)] for n in POINT_COUNTS)
    ratio_points = many["plan_build_ms"]["median"] / few["plan_build_ms"]["median"]
    for r in (few, many):
        print(f"RandomLocation(ensure_nonempty) over {r['points']:>7} points: plan+build "
              f"{r['plan_build_ms']['median']:.1f} ms per request (min "
              f"{r['plan_build_ms']['min']:.1f}), setup {r['setup_ms']:.0f} ms, points per "
              f"batch {r['points_per_batch']['median']:.0f} (min {r['points_per_batch']['min']})")
    print(f"ratio 10^6/10^3 points: plan+build {ratio_points:.2f}x (target <= 2x)")
    summary = {"results": results, "ratio_1TB_over_1GB": {
        "plan_build": ratio_time, "optimize": ratio_opt, "tasks": ratio_tasks},
        "points": points, "ratio_1e6_over_1e3_points": {"plan_build": ratio_points}}
    (args.out / "graph_overhead.json").write_text(json.dumps(summary, indent=2))
    plot(results, args.out / "graph_overhead.png")
    print(f"wrote {args.out / 'graph_overhead.json'} and {args.out / 'graph_overhead.png'}")


if __name__ == "__main__":
    main()
