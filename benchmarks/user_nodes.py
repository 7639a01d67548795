"""What users' numpy nodes and ElasticAugment's exact upstream ROI cost.

1. A gunpowder-style numpy filter: the first request runs it in the driver to learn its outputs'
   dtype and channel axes (numpy_nodes); later requests are lazy tasks. Prints first / later
   batch times and their ratio, measured in one run, after a warm-up build.
2. ElasticAugment's upstream ROI: ``tight_source_box`` (exact, gunpowder's box) against
   ``source_box`` (the bound) and against evaluating the whole field (what gunpowder does),
   for the seed's 84x268x268 request with jitter, rotation and misalignment.

Run: python -m benchmarks.user_nodes [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import daskgp as gp
from daskgp.transforms import (
    ElasticTransform,
    control_point_counts,
    section_shifts,
    source_box,
    spline_coefficients,
    tight_source_box,
)

RAW = gp.ArrayKey("RAW")


class Double(gp.BatchFilter):
    """A user's numpy filter, as gunpowder's tutorial writes them."""

    uses_global_random = False

    def process(self, batch, request):
        batch[RAW].data = batch[RAW].data * 2


def learning_cost(shape, builds: int) -> dict:
    data = np.random.default_rng(0).random(tuple(2 * s for s in shape), dtype=np.float32)
    source = gp.ArraySource(RAW, gp.Array(data, gp.ArraySpec(
        roi=gp.Roi((0, 0, 0), data.shape), voxel_size=(1, 1, 1))))
    request = gp.BatchRequest()
    request.add(RAW, shape)
    firsts, laters = [], []
    for build in range(builds + 1):  # build 0 warms up imports and thread pools
        with gp.build(source + gp.RandomLocation() + Double(), scheduler="threads",
                      seed=build) as p:
            start = time.perf_counter()
            p.request_batch(request)
            first = time.perf_counter() - start
            later = []
            for _ in range(5):
                start = time.perf_counter()
                p.request_batch(request)
                later.append(time.perf_counter() - start)
        if build:
            firsts.append(first)
            laters.append(statistics.median(later))
    first, later = statistics.median(firsts), statistics.median(laters)
    return {"shape": list(shape), "first_ms": 1e3 * first, "later_ms": 1e3 * later,
            "ratio": first / later}


def elastic_roi_cost(grid, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    counts = control_point_counts(grid, (4, 40, 40))
    values = np.zeros((3, *counts))
    values[1:] = rng.normal(scale=2, size=(2, *counts))
    shifts = section_shifts(rng.random(grid[0]), rng.integers(-10, 11, size=(grid[0], 2)),
                            0.05, 0.05)
    timings = {"bound": [], "exact": [], "full_field": []}
    for repeat in range(repeats):
        transform = ElasticTransform(grid, spline_coefficients(values), 0.3 + 0.2 * repeat,
                                     1.0, shifts)
        for name, call in (("bound", lambda t=transform: source_box(t, (0, 0, 0), grid)),
                           ("exact", lambda t=transform: tight_source_box(t, (0, 0, 0), grid)),
                           ("full_field", lambda t=transform: t._frame_coordinates((0, 0, 0),
                                                                                   grid))):
            start = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - start)
    medians = {name: 1e3 * statistics.median(t) for name, t in timings.items()}
    return {"grid": list(grid), **{f"{k}_ms": v for k, v in medians.items()},
            "exact_over_full_field": medians["exact"] / medians["full_field"]}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    learning = results["learning"]
    axes[0].bar(["first batch", "later batches"], [learning["first_ms"], learning["later_ms"]])
    axes[0].set_ylabel("ms per batch (median)")
    axes[0].set_title("numpy filter: learning its outputs")
    roi = results["elastic_roi"]
    axes[1].bar(["bound", "exact", "full field"], [roi["bound_ms"], roi["exact_ms"],
                                                   roi["full_field_ms"]])
    axes[1].set_ylabel("ms per request (median)")
    axes[1].set_title("ElasticAugment upstream ROI")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    shape, grid, repeats = ((16, 64, 64), (24, 96, 96), 2) if args.quick else \
        ((32, 256, 256), (84, 268, 268), 5)
    results = {"learning": learning_cost(shape, repeats),
               "elastic_roi": elastic_roi_cost(grid, repeats)}
    learning, roi = results["learning"], results["elastic_roi"]
    print(f"numpy filter on {tuple(shape)} float32: first batch {learning['first_ms']:.1f} ms, "
          f"later {learning['later_ms']:.1f} ms, ratio {learning['ratio']:.2f}")
    print(f"ElasticAugment ROI for {tuple(grid)}: bound {roi['bound_ms']:.2f} ms, exact "
          f"{roi['exact_ms']:.1f} ms, full field {roi['full_field_ms']:.1f} ms "
          f"(exact / full field {roi['exact_over_full_field']:.2f})")
    (args.out / "user_nodes.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "user_nodes.png")
    print(f"wrote {args.out / 'user_nodes.json'} and {args.out / 'user_nodes.png'}")


if __name__ == "__main__":
    main()
