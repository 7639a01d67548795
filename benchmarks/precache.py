"""PreCache at gunpowder users' settings: the seed pipeline behind PreCache(cache_size=40,
num_workers=N) for N = 1, 2, 20, 40, on the threads scheduler and on a LocalCluster(2x1), plus
an optional soak run with RSS sampled over time.

Run: python -m benchmarks.precache [--rounds 5] [--batches 20] [--soak-batches 2000] [--quick]

Made to be trusted on a shared, loaded machine:

- every measurement runs in a fresh process (its own LocalCluster for the cluster settings),
  warmed up by one batch before the clock starts, so that no setting inherits another's
  memory, cache, cluster state or cancelled tasks, and peak RSS (process plus cluster
  workers) is that setting's own;
- the settings are interleaved in rounds (every round measures all eight, in an order rotated
  from round to round), so load drift hits all settings alike;
- per setting, the median over rounds of the first batch's latency (from the first request of
  a fresh build; beside it, one batch's time without PreCache in the same process), of
  batches/s over ``--batches`` batches after it, and of peak RSS, with the spread (min and
  max over rounds) printed beside it;
- the ratios to the best setting use the same rounds: the ratio of the medians, and the range
  of the per-round ratios (each round's setting against that round's best).

Targets (issue 13): at num_workers 20 and 40, the first batch within 1.5x of the best setting,
batches/s within 0.9x, peak RSS within 1.5x. Writes benchmarks/results/precache.json and
precache.png.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORKERS = (1, 2, 20, 40)
SCHEDULERS = ("threads", "LocalCluster(2x1)")
CACHE_SIZE = 40
TARGETS = {"first_batch_s": 1.5, "batches_per_s": 0.9, "peak_rss_mb": 1.5}
LOWER_IS_BETTER = {"first_batch_s": True, "batches_per_s": False, "peak_rss_mb": True}


def cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its children (cluster workers)."""
    import psutil

    process = psutil.Process()
    times = process.cpu_times()
    children = 0.0
    for child in process.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue
        children += child_times.user + child_times.system
    return times.user + times.system, children


def measure(scheduler: str, num_workers: int, batches: int, seed: int) -> dict:
    """One setting, in this (fresh) process: warm up, then a fresh build's first batch,
    ``batches`` more, peak RSS and the time to leave build() with batches in flight."""
    import daskgp as gp
    from benchmarks._common import PeakRss, ensure_dataset, rss_bytes, seed_pipeline

    path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    client = cluster = None
    if scheduler == "threads":
        kwargs = {"scheduler": "threads"}
    else:
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1,
                                           dashboard_address=None)
        client = distributed.Client(cluster)
        kwargs = {"client": client}
    try:
        pipeline, request = seed_pipeline(path)
        # Warm-up (imports, file handles, here and on the cluster's workers), then one batch
        # without PreCache: "one batch's time", what the first batch is held against.
        with gp.build(pipeline, seed=10_000 + seed, **kwargs) as p:
            p.request_batch(request)
            start = time.perf_counter()
            p.request_batch(request)
            plain = time.perf_counter() - start
        cached = pipeline + gp.PreCache(cache_size=CACHE_SIZE, num_workers=num_workers)
        baseline = rss_bytes()
        with PeakRss() as peak:
            build = gp.build(cached, seed=seed, **kwargs)
            p = build.__enter__()
            try:
                start = time.perf_counter()
                p.request_batch(request)
                first = time.perf_counter() - start
                cpu_before = cpu_seconds()
                start = time.perf_counter()
                for _ in range(batches):
                    p.request_batch(request)
                seconds = time.perf_counter() - start
                cpu_after = cpu_seconds()
            finally:
                leave = time.perf_counter()
                build.__exit__(None, None, None)
                leave = time.perf_counter() - leave
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return {"first_batch_s": first, "plain_batch_s": plain,
            "batches_per_s": batches / seconds,
            "peak_rss_mb": peak.peak / 2**20, "rss_before_mb": baseline / 2**20,
            "teardown_s": leave,
            "driver_cpu_s_per_batch": (cpu_after[0] - cpu_before[0]) / batches,
            "worker_cpu_s_per_batch": (cpu_after[1] - cpu_before[1]) / batches,
            "load_average": os.getloadavg()[0]}


def measure_in_subprocess(scheduler: str, num_workers: int, batches: int, seed: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.precache", "--one", scheduler,
               str(num_workers), "--batches", str(batches), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{scheduler} num_workers={num_workers} failed "
                           f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarize(rounds: list[dict]) -> dict:
    """Medians, spreads and ratios to the best setting, from the same rounds.

    ``rounds[r][scheduler][workers]`` is one measurement."""
    summary: dict = {}
    for scheduler in SCHEDULERS:
        rows = {}
        for workers in WORKERS:
            samples = [r[scheduler][workers] for r in rounds]
            row = {"rounds": samples}
            for metric in list(TARGETS) + ["plain_batch_s", "teardown_s",
                                           "driver_cpu_s_per_batch",
                                           "worker_cpu_s_per_batch"]:
                values = [s[metric] for s in samples]
                row[metric] = statistics.median(values)
                row[metric + "_min"], row[metric + "_max"] = min(values), max(values)
            rows[workers] = row
        for metric, lower in LOWER_IS_BETTER.items():
            pick = min if lower else max
            best = pick(row[metric] for row in rows.values())
            per_round_best = [pick(r[scheduler][w][metric] for w in WORKERS) for r in rounds]
            for workers, row in rows.items():
                ratio = row[metric] / best
                per_round = [r[scheduler][workers][metric] / b
                             for r, b in zip(rounds, per_round_best, strict=True)]
                row[metric + "_over_best"] = ratio
                row[metric + "_over_best_rounds"] = per_round
                row[metric + "_meets_target"] = (ratio <= TARGETS[metric] if lower
                                                 else ratio >= TARGETS[metric])
        summary[scheduler] = rows
    return summary


def report(summary: dict) -> None:
    for scheduler, rows in summary.items():
        for workers, row in rows.items():
            parts = []
            for metric, unit, fmt in (("first_batch_s", "s first batch", ".2f"),
                                      ("batches_per_s", "batches/s", ".2f"),
                                      ("peak_rss_mb", "MiB peak RSS", ".0f")):
                per_round = row[metric + "_over_best_rounds"]
                mark = "" if workers < 20 else (" ok" if row[metric + "_meets_target"]
                                                else " MISS")
                parts.append(
                    f"{row[metric]:{fmt}} {unit} [{row[metric + '_min']:{fmt}}-"
                    f"{row[metric + '_max']:{fmt}}] = {row[metric + '_over_best']:.2f}x best "
                    f"[rounds {min(per_round):.2f}-{max(per_round):.2f}]{mark}")
            print(f"{scheduler:>18} num_workers={workers:>2}: " + "; ".join(parts)
                  + f"; one batch without PreCache {row['plain_batch_s']:.2f} s"
                  f"; teardown {row['teardown_s']:.2f} s; CPU/batch driver "
                  f"{row['driver_cpu_s_per_batch']:.2f} s + workers "
                  f"{row['worker_cpu_s_per_batch']:.2f} s", flush=True)


def soak(batches: int, num_workers: int) -> dict:
    import daskgp as gp
    from benchmarks._common import ensure_dataset, rss_bytes, seed_pipeline

    path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
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

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.9))
    titles = {"batches_per_s": ("batches / s", "PreCache(40, N) throughput"),
              "first_batch_s": ("seconds", "first batch"),
              "peak_rss_mb": ("peak RSS (MiB, incl. workers)", "memory")}
    for ax, (metric, (ylabel, title)) in zip(axes, titles.items(), strict=False):
        for name, rows in results["throughput"].items():
            workers = [int(w) for w in rows]
            medians = [rows[w][metric] for w in rows]
            low = [rows[w][metric] - rows[w][metric + "_min"] for w in rows]
            high = [rows[w][metric + "_max"] - rows[w][metric] for w in rows]
            ax.errorbar(workers, medians, yerr=[low, high], fmt="o-", capsize=3, label=name)
        ax.set(xlabel="num_workers", ylabel=ylabel, xscale="log",
               title=f"{title} (median, min-max of {results['rounds']} rounds)")
        ax.legend()
    if results.get("soak"):
        samples = results["soak"]["samples"]
        axes[3].plot([s[0] for s in samples], [s[2] for s in samples])
        axes[3].set(xlabel="batch", ylabel="RSS (MiB)", title="soak (threads)")
    else:
        axes[3].axis("off")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--soak-batches", type=int, default=2000)
    parser.add_argument("--quick", action="store_true",
                        help="3 rounds of 10 batches per setting, no soak")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--one", nargs=2, metavar=("SCHEDULER", "NUM_WORKERS"),
                        help=argparse.SUPPRESS)  # one measurement, in a fresh process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        result = measure(args.one[0], int(args.one[1]), args.batches, args.seed)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.quick:
        args.rounds, args.batches, args.soak_batches = 3, 10, 0
    args.out.mkdir(parents=True, exist_ok=True)
    from benchmarks._common import ensure_dataset

    ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    print(f"cores seen: {os.cpu_count()}; {args.rounds} rounds of {len(SCHEDULERS)} x "
          f"{len(WORKERS)} settings, {args.batches} batches each", flush=True)
    settings = [(s, w) for s in SCHEDULERS for w in WORKERS]
    rounds = []
    for r in range(args.rounds):
        shift = (r * 3) % len(settings)  # rotate the order from round to round
        measured: dict = {s: {} for s in SCHEDULERS}
        for scheduler, workers in settings[shift:] + settings[:shift]:
            row = measure_in_subprocess(scheduler, workers, args.batches, seed=r)
            measured[scheduler][workers] = row
            print(f"round {r}: {scheduler} num_workers={workers}: first batch "
                  f"{row['first_batch_s']:.2f} s, {row['batches_per_s']:.2f} batches/s, peak "
                  f"RSS {row['peak_rss_mb']:.0f} MiB (load {row['load_average']:.1f})",
                  flush=True)
        rounds.append(measured)
    summary = summarize(rounds)
    report(summary)
    results = {"cores": os.cpu_count(), "rounds": args.rounds, "batches": args.batches,
               "cache_size": CACHE_SIZE, "targets": TARGETS, "throughput": summary}
    if args.soak_batches:
        results["soak"] = soak(args.soak_batches, num_workers=2)
        s = results["soak"]
        print(f"soak {args.soak_batches} batches: RSS {s['rss_early_mb']:.0f} MiB early, "
              f"{s['rss_late_mb']:.0f} MiB late (ratio {s['late_over_early']:.3f}), "
              f"{s['batches_per_s']:.2f} batches/s")
    (args.out / "precache.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "precache.png")
    print(f"wrote {args.out / 'precache.json'} and {args.out / 'precache.png'}")


if __name__ == "__main__":
    main()
