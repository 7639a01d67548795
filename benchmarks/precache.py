"""PreCache at gunpowder users' settings: the seed pipeline behind PreCache(cache_size=40,
num_workers=N) for N = 1, 2, 20, 40, on the threads scheduler and on a LocalCluster(2x1), plus
an optional soak run with RSS sampled over time.

Run: python -m benchmarks.precache [--rounds 4] [--windows 4] [--batches 20]
     [--soak-batches 2000] [--quick] [--trace]

Made to be trusted on a shared, loaded machine:

- a round is one fresh process per scheduler (its own LocalCluster), warmed up by two plain
  batches and one unmeasured PreCache build (a fresh process's first builds run slower);
- in it, the four settings are interleaved: ``--windows`` times, each setting in turn gets a
  fresh build, its first batch and ``--batches`` more (the same batches for every setting of
  a window), so that settings are measured seconds apart and the other load on the machine
  hits them alike; the orders are the rows of a balanced Latin square (every setting at every
  position once, and right after every other setting once); a cluster is left idle (the
  previous build's cancelled futures gone) before each build;
- per setting and round: the median first-batch latency (from the first request of a fresh
  build; beside it, one batch's time without PreCache), batches/s over all its windows, the
  highest peak RSS (process plus cluster workers); over rounds the median, with min and max;
- the ratios to the best setting: the ratio of the medians, and the range of the per-round
  ratios (each round's setting against that round's best).

Why interleaved windows rather than one fresh process per setting (the previous design):
num_workers 2, 20 and 40 run identical code on 2 cores (PreCache computes
``min(num_workers, max(2, cores))`` batches at once; on a cluster num_workers plays no part at
all), yet one-process-per-setting runs ordered them 0.76x / 0.84x / 1.00x: each setting was
measured over about one second, 20 s away from the next, so it saw its own share of the
other processes' load, and "the best setting" was the luckiest of several identical ones (the
LocalCluster rows, identical code, spread 0.70-1.00x per round). ``--trace`` counts, without
timing, how the threads scheduler runs each setting (tasks per batch, batches running at
once, how busy the pool is): the same for 2, 20 and 40. The run also prints, for the
settings that run identical code, batches/s by position in the window cycle and by the
setting measured just before (a rotation of 1, 2, 20, 40 put 2 after 1 in most windows).

Targets (issue 13): at num_workers 20 and 40, the first batch within 1.5x of the best setting,
batches/s within 0.9x, peak RSS within 1.5x. Writes benchmarks/results/precache.json and
precache.png (``--trace``: precache_trace.json).
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


def wait_until_idle(client, seconds: float = 30.0) -> float:
    """Wait until the cluster holds and runs nothing (the previous setting's cancelled
    futures are gone); the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        busy = sum(len(keys) for keys in client.processing().values())
        held = sum(len(keys) for keys in client.has_what().values())
        if not busy and not held:
            break
        time.sleep(0.05)
    return time.perf_counter() - start


def measure_window(gp, pipeline, request, kwargs: dict, num_workers: int, batches: int,
                   seed: int) -> dict:
    """One fresh ``build()`` of the pipeline behind ``PreCache(CACHE_SIZE, num_workers)``: its
    first batch, ``batches`` more, the peak RSS over it and the time to leave build() with
    batches in flight."""
    from benchmarks._common import PeakRss, rss_bytes

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
    return {"first_batch_s": first, "seconds": seconds, "peak_rss_mb": peak.peak / 2**20,
            "rss_before_mb": baseline / 2**20, "teardown_s": leave,
            "driver_cpu_s": cpu_after[0] - cpu_before[0],
            "worker_cpu_s": cpu_after[1] - cpu_before[1]}


def window_order(settings: int, window: int) -> list[int]:
    """The order of the settings in window ``window``: row ``window`` of a balanced Latin
    square (Williams), so that over ``settings`` windows every setting comes at every position
    once and right after every other setting once (for an even number of settings). A plain
    rotation keeps the cyclic order: one setting always follows the same other one (2 after 1)
    and inherits whatever that one leaves behind.

    Example:
        >>> [window_order(4, w) for w in range(4)]
        [[0, 1, 3, 2], [1, 2, 0, 3], [2, 3, 1, 0], [3, 0, 2, 1]]
    """
    first = [0]
    low, high = 1, settings - 1
    while low <= high:
        first.append(low)
        low += 1
        if low <= high:
            first.append(high)
            high -= 1
    return [(i + window) % settings for i in first]


def measure(scheduler: str, workers: list[int], batches: int, windows: int,
            seed: int) -> dict:
    """The settings ``workers`` (num_workers values) in this (fresh) process, interleaved:
    after one warm-up, ``windows`` times every setting in turn (the order rotated from window
    to window) gets a fresh build, its first batch and ``batches`` more. Within a window all
    settings compute the same batches (one seed), seconds apart, so the machine's other load
    hits them alike. Per setting: the median first batch, batches/s over all its windows,
    the highest peak RSS."""
    import gc

    import daskgp as gp
    from benchmarks._common import ensure_dataset, seed_pipeline

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
    samples: dict = {w: [] for w in workers}
    try:
        pipeline, request = seed_pipeline(path)
        # Warm-up (imports, file handles, here and on the cluster's workers), then one batch
        # without PreCache: "one batch's time", what the first batch is held against.
        with gp.build(pipeline, seed=10_000 + seed, **kwargs) as p:
            p.request_batch(request)
            start = time.perf_counter()
            p.request_batch(request)
            plain = time.perf_counter() - start
        # A fresh process's first PreCache builds were often slower in our runs (heap, pools
        # and caches still growing): one unmeasured build, so that no window pays for it.
        measure_window(gp, pipeline, request, kwargs, 2, batches, seed=10_000 + seed)
        for window in range(windows):
            order = [workers[i] for i in window_order(len(workers), window)]
            for position, num_workers in enumerate(order):
                gc.collect()
                # The previous build's cancelled futures leave the cluster first.
                idle = wait_until_idle(client) if client is not None else 0.0
                sample = measure_window(gp, pipeline, request, kwargs, num_workers, batches,
                                        seed=1000 * seed + window)
                sample.update(idle_wait_s=idle, position=position,
                              load_average=os.getloadavg()[0])
                samples[num_workers].append(sample)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    rows = {}
    for num_workers, runs in samples.items():
        seconds = sum(run["seconds"] for run in runs)
        total = batches * len(runs)
        rows[num_workers] = {
            "first_batch_s": statistics.median(run["first_batch_s"] for run in runs),
            "plain_batch_s": plain,
            "batches_per_s": total / seconds,
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "rss_before_mb": min(run["rss_before_mb"] for run in runs),
            "teardown_s": statistics.median(run["teardown_s"] for run in runs),
            "driver_cpu_s_per_batch": sum(run["driver_cpu_s"] for run in runs) / total,
            "worker_cpu_s_per_batch": sum(run["worker_cpu_s"] for run in runs) / total,
            "load_average": statistics.mean(run["load_average"] for run in runs),
            "windows": runs}
    return rows


def measure_in_subprocess(scheduler: str, workers: list[int], batches: int, windows: int,
                          seed: int) -> dict:
    command = [sys.executable, "-m", "benchmarks.precache", "--one", scheduler,
               ",".join(map(str, workers)), "--batches", str(batches), "--windows",
               str(windows), "--seed", str(seed)]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          cwd=Path(__file__).parent.parent)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{scheduler} num_workers={workers} failed "
                           f"(exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {int(w): row for w, row in json.loads(lines[-1][len("RESULT "):]).items()}


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


def same_code_settings(cores: int) -> list[int]:
    """The num_workers values that run identical code on ``cores`` cores: PreCache computes
    ``min(num_workers, max(2, cores))`` batches at once, so all of these compute the same
    number. Their spread is the benchmark's own noise."""
    cap = max(2, cores)
    return [w for w in WORKERS if w >= cap]


def carryover(rounds: list[dict], scheduler: str, workers: list[int]) -> dict:
    """For the settings ``workers`` (identical code): a window's batches/s over its cycle's
    mean, averaged by the window's position in the cycle and by the setting measured just
    before it in the process. A setting that suffers from coming first, or after another,
    shows here."""
    by: dict = {"position": {}, "after": {}}
    for measured in rounds:
        rows = measured[scheduler]
        cycles = len(rows[workers[0]]["windows"])
        sequence = []
        for cycle in range(cycles):
            windows = sorted((rows[w]["windows"][cycle]["position"], w) for w in rows)
            rates = {w: 1 / rows[w]["windows"][cycle]["seconds"] for w in rows}
            mean = statistics.mean(rates[w] for w in workers)
            sequence += [(position, w, rates[w] / mean) for position, w in windows]
        for i, (position, w, ratio) in enumerate(sequence):
            if w in workers:
                by["position"].setdefault(position, []).append(ratio)
                by["after"].setdefault(sequence[i - 1][1] if i else "start", []).append(ratio)
    return {kind: {str(key): statistics.mean(table[key]) for key in sorted(table, key=str)}
            for kind, table in by.items()}


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


def trace(batches: int, windows: int) -> dict:
    """How the threads scheduler runs each setting, counted rather than timed: per build,
    the tasks per batch, the most batches with tasks running at once, the share of task starts
    while an earlier batch was unfinished, and how busy the compute pool's threads were. The
    settings that run identical code (``same_code_settings``) give the same counts."""
    import threading

    import daskgp as gp
    from benchmarks._common import ensure_dataset, seed_pipeline
    from daskgp import scheduling

    runs: list = []
    lock = threading.Lock()

    class TracedPool(scheduling.PriorityPool):
        """Records (batch index, start, end) of every task it runs."""

        def submit(self, priority, fn, *args, **kwargs):
            def traced(*a, **k):
                start = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    with lock:
                        runs.append((priority, start, time.perf_counter()))

            return super().submit(priority, traced, *args, **kwargs)

    scheduling.PriorityPool = TracedPool
    pipeline, request = seed_pipeline(ensure_dataset("em_200x1000x1000", (200, 1000, 1000)))
    kwargs = {"scheduler": "threads"}
    measure_window(gp, pipeline, request, kwargs, 2, batches, seed=10_000)
    result: dict = {}
    for window in range(windows):
        for num_workers in WORKERS:
            with lock:
                runs.clear()
            sample = measure_window(gp, pipeline, request, kwargs, num_workers, batches,
                                    seed=window)
            with lock:
                tasks = list(runs)
            spans: dict = {}
            for index, start, end in tasks:
                first, last, count = spans.get(index, (start, end, 0))
                spans[index] = (min(first, start), max(last, end), count + 1)
            edges = sorted([(first, 1) for first, _, _ in spans.values()]
                           + [(last, -1) for _, last, _ in spans.values()])
            overlapping = most = 0
            for _, step in edges:
                overlapping += step
                most = max(most, overlapping)
            ahead = sum(1 for index, start, _ in tasks
                        if any(other < index and spans[other][1] > start for other in spans))
            span = max(end for _, _, end in tasks) - min(start for _, start, _ in tasks)
            busy = sum(end - start for _, start, end in tasks) / (span * scheduling.usable_cores())
            result.setdefault(num_workers, []).append({
                "batches": len(spans), "tasks": len(tasks),
                "tasks_per_batch": statistics.median(c for _, _, c in spans.values()),
                "most_batches_running": most, "task_starts_ahead_share": ahead / len(tasks),
                "pool_busy_share": busy, "batches_per_s": batches / sample["seconds"]})
    for num_workers, rows in result.items():
        print(f"trace num_workers={num_workers:>2}: " + "; ".join(
            f"{r['tasks_per_batch']:.0f} tasks/batch, at most {r['most_batches_running']} "
            f"batches running, {r['task_starts_ahead_share']:.2f} of task starts ahead of an "
            f"unfinished batch, pool {r['pool_busy_share']:.2f} busy, "
            f"{r['batches_per_s']:.2f} batches/s" for r in rows), flush=True)
    return result


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
        ax.title.set_fontsize(9)
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
    parser.add_argument("--rounds", type=int, default=4,
                        help="fresh processes per scheduler (default 4)")
    parser.add_argument("--windows", type=int, default=len(WORKERS),
                        help="builds per setting in each process, interleaved (default 4)")
    parser.add_argument("--batches", type=int, default=20,
                        help="batches per build after its first (default 20)")
    parser.add_argument("--soak-batches", type=int, default=2000)
    parser.add_argument("--quick", action="store_true",
                        help="2 rounds of 4 windows of 10 batches per setting, no soak")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--one", nargs=2, metavar=("SCHEDULER", "NUM_WORKERS"),
                        help=argparse.SUPPRESS)  # one round of one scheduler, fresh process
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true",
                        help="count how the threads scheduler runs each setting (tasks, "
                             "batches running at once, pool busy), write precache_trace.json")
    args = parser.parse_args()
    if args.trace:
        args.out.mkdir(parents=True, exist_ok=True)
        result = trace(args.batches, 2)
        (args.out / "precache_trace.json").write_text(json.dumps(result, indent=2))
        return
    if args.one:
        workers = [int(w) for w in args.one[1].split(",")]
        result = measure(args.one[0], workers, args.batches, args.windows, args.seed)
        print("RESULT " + json.dumps(result), flush=True)
        return
    if args.quick:
        args.rounds, args.windows, args.batches, args.soak_batches = 2, len(WORKERS), 10, 0
    args.out.mkdir(parents=True, exist_ok=True)
    from benchmarks._common import ensure_dataset

    ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    print(f"cores seen: {os.cpu_count()}; {args.rounds} rounds of {len(SCHEDULERS)} "
          f"processes, each {args.windows} windows of {len(WORKERS)} settings x "
          f"{args.batches} batches", flush=True)
    rounds = []
    for r in range(args.rounds):
        measured: dict = {}
        for scheduler in SCHEDULERS if r % 2 == 0 else SCHEDULERS[::-1]:
            rows = measure_in_subprocess(scheduler, list(WORKERS), args.batches, args.windows,
                                         seed=r)
            measured[scheduler] = rows
            for workers, row in rows.items():
                print(f"round {r}: {scheduler} num_workers={workers}: first batch "
                      f"{row['first_batch_s']:.2f} s, {row['batches_per_s']:.2f} batches/s, "
                      f"peak RSS {row['peak_rss_mb']:.0f} MiB (load "
                      f"{row['load_average']:.1f})", flush=True)
        rounds.append(measured)
    summary = summarize(rounds)
    report(summary)
    same = same_code_settings(os.cpu_count() or 1)
    carried = {}
    if len(same) > 1:
        for scheduler in SCHEDULERS:
            # On a cluster num_workers plays no part: all four settings run the same code.
            group = same if scheduler == "threads" else list(WORKERS)
            carried[scheduler] = carryover(rounds, scheduler, group)
            print(f"{scheduler:>18}: num_workers {group} run identical code here; their "
                  "batches/s over the cycle's mean, by position: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in carried[scheduler]["position"].items())
                  + "; by the setting just before: "
                  + ", ".join(f"{k} {v:.3f}" for k, v in carried[scheduler]["after"].items()),
                  flush=True)
    results = {"cores": os.cpu_count(), "rounds": args.rounds, "windows": args.windows,
               "batches": args.batches,
               "cache_size": CACHE_SIZE, "targets": TARGETS, "throughput": summary,
               "same_code_settings": same, "carryover": carried}
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
