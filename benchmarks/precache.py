"""PreCache throughput and memory: the seed pipeline at num_workers 1, 2, 4 on the threads
scheduler and on a LocalCluster, plus a soak run with RSS sampled over time.

Run: python -m benchmarks.precache [--batches 20] [--soak-batches 2000]
Prints batches/s and peak RSS per setting, ratios against num_workers=1, and the soak's RSS
drift; writes benchmarks/results/precache.json and precache.png.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import daskgp as gp
from benchmarks._common import PeakRss, ensure_dataset, rss_bytes, seed_pipeline

WORKERS = (1, 2, 4)


def throughput(path: Path, scheduler, num_workers: int, batches: int) -> dict:
    pipeline, request = seed_pipeline(path)
    cached = pipeline + gp.PreCache(cache_size=2 * num_workers, num_workers=num_workers)
    kwargs = {"client": scheduler} if not isinstance(scheduler, str) else {"scheduler": scheduler}
    with gp.build(cached, seed=0, **kwargs) as p:
        p.request_batch(request)  # warm-up: imports, file handles, first plans
        with PeakRss() as peak:
            start = time.perf_counter()
            for _ in range(batches):
                p.request_batch(request)
            seconds = time.perf_counter() - start
    return {"batches_per_s": batches / seconds, "peak_rss_mb": peak.peak / 2**20}


def soak(path: Path, batches: int, num_workers: int) -> dict:
    pipeline, request = seed_pipeline(path)
    cached = pipeline + gp.PreCache(cache_size=2 * num_workers, num_workers=num_workers)
    samples = []
    start = time.perf_counter()
    with gp.build(cached, scheduler="threads", seed=1) as p:
        for i in range(batches):
            p.request_batch(request)
            if i % 50 == 0 or i == batches - 1:
                samples.append((i, time.perf_counter() - start, rss_bytes() / 2**20))
    quarter = max(1, len(samples) // 4)
    early = sum(s[2] for s in samples[1:1 + quarter]) / len(samples[1:1 + quarter])
    late = sum(s[2] for s in samples[-quarter:]) / quarter
    rate = batches / (time.perf_counter() - start)
    return {"samples": samples, "rss_early_mb": early, "rss_late_mb": late,
            "late_over_early": late / early, "batches_per_s": rate}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, rows in results["throughput"].items():
        workers = [int(w) for w in rows]
        axes[0].plot(workers, [rows[w]["batches_per_s"] for w in rows], "o-", label=name)
        axes[1].plot(workers, [rows[w]["peak_rss_mb"] for w in rows], "o-", label=name)
    axes[0].set(xlabel="num_workers", ylabel="batches / s", title="PreCache throughput")
    axes[1].set(xlabel="num_workers", ylabel="peak RSS (MiB, incl. workers)", title="memory")
    for ax in axes[:2]:
        ax.legend()
    if results.get("soak"):
        samples = results["soak"]["samples"]
        axes[2].plot([s[0] for s in samples], [s[2] for s in samples])
        axes[2].set(xlabel="batch", ylabel="RSS (MiB)", title="soak (threads)")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--soak-batches", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    print(f"cores seen: {os.cpu_count()}")

    import distributed

    results = {"cores": os.cpu_count(), "throughput": {"threads": {}, "LocalCluster(2x1)": {}}}
    for workers in WORKERS:
        results["throughput"]["threads"][workers] = throughput(path, "threads", workers,
                                                               args.batches)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for workers in WORKERS:
            results["throughput"]["LocalCluster(2x1)"][workers] = throughput(
                path, client, workers, args.batches)
    for name, rows in results["throughput"].items():
        base = rows[1]["batches_per_s"]
        for workers, row in rows.items():
            row["speedup_vs_1"] = row["batches_per_s"] / base
            print(f"{name:>18} num_workers={workers}: {row['batches_per_s']:.2f} batches/s "
                  f"({row['speedup_vs_1']:.2f}x vs 1), peak RSS {row['peak_rss_mb']:.0f} MiB")
    if args.soak_batches:
        results["soak"] = soak(path, args.soak_batches, num_workers=2)
        s = results["soak"]
        print(f"soak {args.soak_batches} batches: RSS {s['rss_early_mb']:.0f} MiB early, "
              f"{s['rss_late_mb']:.0f} MiB late (ratio {s['late_over_early']:.3f}), "
              f"{s['batches_per_s']:.2f} batches/s")
    (args.out / "precache.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "precache.png")
    print(f"wrote {args.out / 'precache.json'} and {args.out / 'precache.png'}")


if __name__ == "__main__":
    main()
