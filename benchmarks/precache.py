"""PreCache at gunpowder users' settings: the seed pipeline behind PreCache(cache_size=40,
num_workers=N) for N = 1, 2, 20, 40, on the threads scheduler and on a LocalCluster, plus a
soak run with RSS sampled over time.

Run: python -m benchmarks.precache [--batches 20] [--soak-batches 2000] [--quick]
Prints, per setting, the first batch's latency (from the first request of a fresh build;
median of 3 builds),
batches/s after it, peak RSS (with cluster workers) and the time to leave build() with
batches in flight; the ratios of 20 and 40 workers to the best setting; the soak's RSS
drift; writes benchmarks/results/precache.json and precache.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import daskgp as gp
from benchmarks._common import PeakRss, ensure_dataset, rss_bytes, seed_pipeline

WORKERS = (1, 2, 20, 40)
CACHE_SIZE = 40


def first_batch_seconds(path: Path, scheduler, num_workers: int, repeats: int) -> list:
    """Seconds from a fresh build's first request to its first batch, ``repeats`` times."""
    pipeline, request = seed_pipeline(path)
    cached = pipeline + gp.PreCache(cache_size=CACHE_SIZE, num_workers=num_workers)
    kwargs = {"client": scheduler} if not isinstance(scheduler, str) else {"scheduler": scheduler}
    seconds = []
    for _ in range(repeats):
        with gp.build(cached, seed=0, **kwargs) as p:
            start = time.perf_counter()
            p.request_batch(request)
            seconds.append(time.perf_counter() - start)
    return seconds


def throughput(path: Path, scheduler, num_workers: int, batches: int,
               repeats: int = 3) -> dict:
    """First-batch latency (median of ``repeats`` fresh builds and the timed one), then
    batches/s over ``batches`` more, peak RSS and the time to leave build()."""
    firsts = first_batch_seconds(path, scheduler, num_workers, repeats - 1)
    pipeline, request = seed_pipeline(path)
    cached = pipeline + gp.PreCache(cache_size=CACHE_SIZE, num_workers=num_workers)
    kwargs = {"client": scheduler} if not isinstance(scheduler, str) else {"scheduler": scheduler}
    with PeakRss() as peak:
        build = gp.build(cached, seed=0, **kwargs)
        p = build.__enter__()
        try:
            start = time.perf_counter()
            p.request_batch(request)
            first = time.perf_counter() - start
            start = time.perf_counter()
            for _ in range(batches):
                p.request_batch(request)
            seconds = time.perf_counter() - start
        finally:
            leave = time.perf_counter()
            build.__exit__(None, None, None)
            leave = time.perf_counter() - leave
    firsts.append(first)
    return {"first_batch_s": statistics.median(firsts), "first_batch_samples_s": firsts,
            "batches_per_s": batches / seconds,
            "peak_rss_mb": peak.peak / 2**20, "teardown_s": leave}


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

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for name, rows in results["throughput"].items():
        workers = [int(w) for w in rows]
        for ax, metric in zip(axes, ("batches_per_s", "first_batch_s", "peak_rss_mb"),
                              strict=False):
            ax.plot(workers, [rows[w][metric] for w in rows], "o-", label=name)
    for ax, (ylabel, title) in zip(axes, [("batches / s", "PreCache(40, N) throughput"),
                                          ("seconds", "first batch"),
                                          ("peak RSS (MiB, incl. workers)", "memory")],
                                   strict=False):
        ax.set(xlabel="num_workers", ylabel=ylabel, title=title, xscale="log")
        ax.legend()
    if results.get("soak"):
        samples = results["soak"]["samples"]
        axes[3].plot([s[0] for s in samples], [s[2] for s in samples])
        axes[3].set(xlabel="batch", ylabel="RSS (MiB)", title="soak (threads)")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--soak-batches", type=int, default=2000)
    parser.add_argument("--quick", action="store_true",
                        help="6 batches per setting, no soak")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.soak_batches = 6, 0
    args.out.mkdir(parents=True, exist_ok=True)
    path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    print(f"cores seen: {os.cpu_count()}")

    import distributed

    warm = gp.build(seed_pipeline(path)[0], scheduler="threads")  # imports, file handles
    with warm as p:
        p.request_batch(seed_pipeline(path)[1])
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
        best = {"first_batch_s": min(r["first_batch_s"] for r in rows.values()),
                "batches_per_s": max(r["batches_per_s"] for r in rows.values()),
                "peak_rss_mb": min(r["peak_rss_mb"] for r in rows.values())}
        for workers, row in rows.items():
            row["first_batch_over_best"] = row["first_batch_s"] / best["first_batch_s"]
            row["batches_per_s_over_best"] = row["batches_per_s"] / best["batches_per_s"]
            row["peak_rss_over_best"] = row["peak_rss_mb"] / best["peak_rss_mb"]
            print(f"{name:>18} num_workers={workers:>2}: first batch {row['first_batch_s']:.2f} s "
                  f"({row['first_batch_over_best']:.2f}x best), {row['batches_per_s']:.2f} "
                  f"batches/s ({row['batches_per_s_over_best']:.2f}x best), peak RSS "
                  f"{row['peak_rss_mb']:.0f} MiB ({row['peak_rss_over_best']:.2f}x best), "
                  f"teardown {row['teardown_s']:.2f} s")
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
