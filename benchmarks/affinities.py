"""The affinity-training pipeline side by side: daskgp vs gunpowder 1.5.0, same data, same run.

Pipeline (both engines): two zarr volumes, each ``ZarrSource + Normalize + RandomLocation``,
then ``RandomProvider + Reject(mask, 0.5) + ElasticAugment([4,40,40], [0,2,2], [0, pi/2])
+ SimpleAugment(transpose_only=[1,2]) + GrowBoundary(gt, mask, only_xy=True)
+ AddAffinities(nearest, gt, affs, labels_mask=mask, affinities_mask=affs_mask)
+ BalanceLabels(affs, scale, affs_mask) + PreCache``. Request: raw, gt, affs, affs_mask,
scale (sizes below, voxels). The volumes are synthetic EM-like zarr (format 2) data made
once under benchmarks/data (``$DASKGP_BENCH_DATA``).

    python -m benchmarks.affinities [--batches 12] [--gunpowder-batches 6] [--quick]

Each engine runs in a subprocess (gunpowder in its own virtualenv, see
``_runner.ensure_gunpowder_venv``). Prints batches per second (throughput over the measured
batches, after one warm-up batch that fills the cache), seconds per batch, CPU seconds per
delivered batch from setup to teardown (with child processes: gunpowder's PreCache forks; both
include up to ``cache_size`` batches computed ahead and never delivered), the smallest mask
ratio seen (Reject must keep it above 0.5), and the ratios; writes
benchmarks/results/affinities.json and affinities.png (``affinities_quick.*`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runner import cpu_seconds, ensure_gunpowder_venv, peak_rss_mb, run_worker, summary

HERE = Path(__file__).resolve().parent
DATASETS = {"raw": "volumes/raw", "gt": "volumes/labels/neuron_ids",
            "mask": "volumes/labels/mask"}
NEIGHBORHOOD = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
SIZES = {"default": {"volume": (100, 400, 400), "raw": (36, 132, 132), "out": (24, 56, 56)},
         "quick": {"volume": (60, 240, 240), "raw": (28, 100, 100), "out": (16, 40, 40)}}


def build_pipeline(gp, paths: list[str], raw_shape, out_shape, cache_size: int,
                   num_workers: int):
    """The pipeline and its request, for ``gp`` = daskgp or gunpowder (same code)."""
    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    affs, affs_mask, scale = gp.ArrayKey("AFFS"), gp.ArrayKey("AFFS_MASK"), gp.ArrayKey("SCALE")
    sources = tuple(
        gp.ZarrSource(path, {raw: DATASETS["raw"], gt: DATASETS["gt"], mask: DATASETS["mask"]})
        + gp.Normalize(raw) + gp.RandomLocation()
        for path in paths)
    pipeline = (sources + gp.RandomProvider() + gp.Reject(mask, min_masked=0.5)
                + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                + gp.SimpleAugment(transpose_only=[1, 2])
                + gp.GrowBoundary(gt, mask=mask, steps=1, only_xy=True)
                + gp.AddAffinities(NEIGHBORHOOD, gt, affs, labels_mask=mask,
                                   affinities_mask=affs_mask)
                + gp.BalanceLabels(affs, scale, mask=affs_mask)
                + gp.PreCache(cache_size=cache_size, num_workers=num_workers))
    request = gp.BatchRequest()
    request.add(raw, raw_shape)
    for key in (gt, mask, affs, affs_mask, scale):
        request.add(key, out_shape)
    return pipeline, request, {"mask": mask, "affs": affs, "scale": scale}


def worker(engine: str, paths: list[str], batches: int, raw_shape, out_shape,
           cache_size: int, num_workers: int) -> dict:
    """Run ``batches`` (+1 warm-up) batches with ``engine``; timings and sanity values."""
    if engine == "daskgp":
        # The daskgp of this checkout, not whichever one is installed.
        sys.path.insert(0, str(HERE.parent))
        import daskgp as gp
        build = {"scheduler": "threads", "seed": 0}
    else:
        import gunpowder as gp
        build = {}
    from importlib.metadata import version

    pipeline, request, keys = build_pipeline(gp, paths, raw_shape, out_shape, cache_size,
                                             num_workers)
    walls, mask_ratios, affinity_means = [], [], []
    # CPU from setup to teardown (gunpowder's PreCache workers are child processes, counted
    # once reaped), over all delivered batches; both engines also compute up to cache_size
    # batches ahead that are never delivered.
    cpu = cpu_seconds(children=True)
    with gp.build(pipeline, **build) as p:
        first = time.perf_counter()
        p.request_batch(request)
        warmup_s = time.perf_counter() - first
        start = time.perf_counter()
        for _ in range(batches):
            wall = time.perf_counter()
            batch = p.request_batch(request)
            walls.append(time.perf_counter() - wall)
            mask_ratios.append(float(batch[keys["mask"]].data.mean()))
            affinity_means.append(float(batch[keys["affs"]].data.mean()))
            assert batch[keys["scale"]].data.dtype.name == "float32"
        total = time.perf_counter() - start
    cpu = cpu_seconds(children=True) - cpu
    return {"batches_per_s": batches / total, "wall_s": walls, "warmup_s": warmup_s,
            "cpu_s_per_batch": cpu / (batches + 1), "min_mask_ratio": min(mask_ratios),
            "affinity_mean": sum(affinity_means) / len(affinity_means),
            "peak_rss_mb": peak_rss_mb(), "version": version(engine)}


def ensure_volumes(shape) -> list[Path]:
    """Two synthetic EM-like volumes (different seeds), created once."""
    from benchmarks._common import DATA_DIR
    from daskgp.synthetic import make_em_like_dataset

    paths = []
    for seed in (0, 1):
        path = DATA_DIR / f"affinities_{seed}_{'x'.join(map(str, shape))}.zarr"
        if not (path / ".complete").exists():
            print(f"creating {path} ...", flush=True)
            make_em_like_dataset(path, shape=shape, chunks=(64, 128, 128), seed=seed,
                                 zarr_format=2)
            (path / ".complete").write_text("ok")
        paths.append(path)
    return paths


def plot(engines: dict, title: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = list(engines)
    for ax, (metric, label) in zip(axes, (("batches_per_s", "batches per second"),
                                          ("cpu_s_per_batch", "CPU seconds per batch")),
                                   strict=True):
        values = [engines[n][metric] for n in names]
        ax.bar(names, values, color=["tab:blue", "tab:orange"])
        ax.set_ylabel(label)
        for x, v in enumerate(values):
            ax.text(x, v, f"{v:.3g}", ha="center", va="bottom")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["daskgp", "gunpowder"])
    parser.add_argument("--paths", nargs="*", default=[])
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--gunpowder-batches", type=int, default=6)
    parser.add_argument("--cache-size", type=int, default=4)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smaller volumes and batches")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    sizes = SIZES["quick" if args.quick else "default"]
    if args.worker:
        print(json.dumps(worker(args.worker, args.paths, args.batches, sizes["raw"],
                                sizes["out"], args.cache_size, args.num_workers)))
        return

    sys.path.insert(0, str(HERE.parent))
    paths = [str(p) for p in ensure_volumes(sizes["volume"])]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"volumes {paths}; cores seen: {os.cpu_count()}", flush=True)
    common = ["--paths", *paths, "--cache-size", str(args.cache_size), "--num-workers",
              str(args.num_workers)] + (["--quick"] if args.quick else [])
    daskgp = run_worker(sys.executable, "affinities.py", "daskgp", *common,
                        "--batches", str(args.batches))
    gunpowder = run_worker(str(ensure_gunpowder_venv()), "affinities.py", "gunpowder", *common,
                           "--batches", str(args.gunpowder_batches))
    engines = {}
    for name, result in (("daskgp", daskgp), (f"gunpowder {gunpowder['version']}", gunpowder)):
        engines[name] = {k: v for k, v in result.items() if k != "wall_s"}
        engines[name]["wall_s"] = summary(result["wall_s"])
    gp_name = f"gunpowder {gunpowder['version']}"
    ratios = {
        "batches_per_s_daskgp_over_gunpowder":
            daskgp["batches_per_s"] / gunpowder["batches_per_s"],
        "cpu_per_batch_gunpowder_over_daskgp":
            gunpowder["cpu_s_per_batch"] / daskgp["cpu_s_per_batch"],
    }
    for name, e in engines.items():
        print(f"{name:>16}: {e['batches_per_s']:.3f} batches/s, "
              f"{e['wall_s']['median']:.3f} s/batch median (min {e['wall_s']['min']:.3f}, "
              f"max {e['wall_s']['max']:.3f}), {e['cpu_s_per_batch']:.3f} CPU-s/batch, "
              f"warm-up {e['warmup_s']:.1f} s, peak RSS {e['peak_rss_mb']:.0f} MiB, "
              f"min mask ratio {e['min_mask_ratio']:.3f}, mean affinity "
              f"{e['affinity_mean']:.3f}")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    result = {"cores": os.cpu_count(), "sizes": sizes, "engines": engines, "ratios": ratios,
              "batches": {"daskgp": args.batches, "gunpowder": args.gunpowder_batches},
              "cache_size": args.cache_size, "num_workers": args.num_workers}
    stem = "affinities_quick" if args.quick else "affinities"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2))
    raw = "x".join(map(str, sizes["raw"]))
    out = "x".join(map(str, sizes["out"]))
    plot(engines, f"affinity pipeline, raw {raw} + 5 x {out}: daskgp vs {gp_name}",
         args.out / f"{stem}.png")
    print(f"wrote {args.out / f'{stem}.json'} and {args.out / f'{stem}.png'}")


if __name__ == "__main__":
    main()
