"""``daskgp.precompute`` at scale: time to the first batch written, batches/s and the driver's
peak RSS for 10^2, 10^4 and 10^6 requested batches, each size in a fresh process.

Every size writes only its first ``--stop-after`` batches (``max_batches``; at most half of
them: 50 of 10^2), so what grows with the number of batches is the job's start (plan, output
creation, reading the completion record) and bookkeeping, not the work. Each size then runs
again on its output (a resume: the record is read, as many batches again are written).
The pipeline: an in-memory float32 volume 64x256x256 with labels, ``RandomLocation +
SimpleAugment + IntensityAugment``, batches of 16x64x64, on threads.

gunpowder has no equivalent job: it has no batch precomputation command (a user writes a
loop of ``request_batch`` calls and their own zarr writes), so there is nothing to run on its
side; the ratios printed compare daskgp's 10^6-batch job with its 10^2-batch job in one run
(flat is 1.0).

    python -m benchmarks.precompute [--sizes 100 10000 1000000] [--stop-after 200] [--quick]

Prints one line per size and run (first batch s, batches/s, peak RSS of the process and its
growth during the job), then the ratios; writes benchmarks/results/precompute.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (100, 10_000, 1_000_000)


def make_job():
    """The benchmark's pipeline and request."""
    import numpy as np

    import daskgp as gp

    raw, labels = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
    rng = np.random.default_rng(0)
    volume = rng.random((64, 256, 256), dtype=np.float32)
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (64, 256, 256)), voxel_size=(1, 1, 1))
    pipeline = (
        (gp.ArraySource(raw, volume, spec),
         gp.ArraySource(labels, (volume * 10).astype(np.uint8), spec.copy()))
        + gp.MergeProvider() + gp.RandomLocation() + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
    )
    request = gp.BatchRequest()
    request.add(raw, (16, 64, 64))
    request.add(labels, (16, 64, 64))
    return pipeline, request


def child(num_batches: int, stop_after: int, out: str, in_flight: int) -> dict:
    """One size in this (fresh) process: a first run and a resume, ``stop_after`` batches
    each."""
    sys.path.insert(0, str(HERE.parent))
    from benchmarks._common import PeakRss, rss_bytes
    from daskgp.precompute import precompute

    pipeline, request = make_job()
    runs = {}
    for run in ("first", "resume"):
        before = rss_bytes(include_children=False)
        with PeakRss(interval=0.01) as peak:
            summary = precompute(pipeline, request, out, num_batches, seed=1,
                                 scheduler="threads", batches_in_flight=in_flight,
                                 progress=False, max_batches=stop_after)
        steady = summary.elapsed_s - (summary.first_batch_s or 0.0)
        runs[run] = {
            "written": summary.written, "skipped": summary.skipped,
            "first_batch_s": summary.first_batch_s, "elapsed_s": summary.elapsed_s,
            "batches_per_s": summary.written / summary.elapsed_s,
            "steady_batches_per_s": (summary.written - 1) / steady if steady > 0 else None,
            "peak_rss_mb": peak.peak / 2**20, "job_rss_mb": (peak.peak - before) / 2**20,
        }
    return runs


def run_size(num_batches: int, stop_after: int, in_flight: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="daskgp-bench-precompute-") as folder:
        out = os.path.join(folder, "batches.zarr")
        command = [sys.executable, "-m", "benchmarks.precompute", "--child", str(num_batches),
                   str(min(stop_after, num_batches // 2)), out, str(in_flight)]
        start = time.perf_counter()
        done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True,
                              check=False)
        if done.returncode:
            raise RuntimeError(f"{command} failed:\n{done.stderr}")
        runs = json.loads(done.stdout.strip().splitlines()[-1])
        runs["process_s"] = time.perf_counter() - start
        return runs


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [int(s) for s in results["sizes"]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for run, marker in (("first", "o-"), ("resume", "s--")):
        rows = [results["sizes"][str(s)][run] for s in sizes]
        axes[0].plot(sizes, [r["first_batch_s"] for r in rows], marker, label=run)
        axes[1].plot(sizes, [r["batches_per_s"] for r in rows], marker, label=run)
        axes[2].plot(sizes, [r["peak_rss_mb"] for r in rows], marker, label=run)
    titles = [("seconds", "time to first batch written"), ("batches / s", "throughput"),
              ("MiB", "driver peak RSS")]
    for ax, (ylabel, title) in zip(axes, titles, strict=True):
        ax.set(xscale="log", xlabel="requested batches", ylabel=ylabel, title=title)
        ax.set_ylim(bottom=0)
        ax.legend()
    fig.suptitle(f"daskgp precompute, first {results['stop_after']} batches of each job "
                 f"({results['cores']} cores)")
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--stop-after", type=int, default=200,
                        help="batches written per run (max_batches)")
    parser.add_argument("--batches-in-flight", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="40 batches per run")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        num_batches, stop_after, out, in_flight = args.child
        print(json.dumps(child(int(num_batches), int(stop_after), out, int(in_flight))))
        return
    if args.quick:
        args.stop_after = 40
    in_flight = args.batches_in_flight or 2 * (os.cpu_count() or 1)
    results = {"cores": os.cpu_count(), "stop_after": args.stop_after,
               "batches_in_flight": in_flight, "sizes": {}}
    print(f"cores: {os.cpu_count()}, batches in flight: {in_flight}, "
          f"first {args.stop_after} batches of each job")
    for size in args.sizes:
        runs = run_size(size, args.stop_after, in_flight)
        results["sizes"][str(size)] = runs
        for run in ("first", "resume"):
            row = runs[run]
            print(f"{size:>9} batches, {run:>6}: wrote {row['written']:>4} (skipped "
                  f"{row['skipped']}), first batch {row['first_batch_s']:.3f} s, "
                  f"{row['batches_per_s']:.1f} batches/s, peak RSS {row['peak_rss_mb']:.0f} "
                  f"MiB (+{row['job_rss_mb']:.0f} during the job)")
    smallest, largest = str(min(args.sizes)), str(max(args.sizes))
    ratios = {}
    for run in ("first", "resume"):
        small, large = results["sizes"][smallest][run], results["sizes"][largest][run]
        ratios[run] = {metric: large[metric] / small[metric] for metric in
                       ("first_batch_s", "batches_per_s", "peak_rss_mb")}
        print(f"{run}: {largest} vs {smallest} batches: first batch x"
              f"{ratios[run]['first_batch_s']:.2f}, batches/s x"
              f"{ratios[run]['batches_per_s']:.2f}, peak RSS x{ratios[run]['peak_rss_mb']:.2f}")
    results["ratios_largest_over_smallest"] = ratios
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "precompute.json").write_text(json.dumps(results, indent=2))
    plot(results, args.out / "precompute.png")
    print(f"wrote {args.out / 'precompute.json'} and {args.out / 'precompute.png'}")


if __name__ == "__main__":
    main()
