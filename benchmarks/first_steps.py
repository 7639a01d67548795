"""The seed pipeline side by side: daskgp vs gunpowder on the same data and machine, plus the
floor (one read of the upstream ROI and one map_coordinates per array).

Pipeline: ZarrSource + Normalize + RandomLocation + ElasticAugment([4,40,40], [0,2,2],
[0, pi/2]) + SimpleAugment(transpose_only=[1,2]) + IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1);
request raw 84x268x268, gt and mask 56^3 voxels, on a synthetic EM-like zarr (format 2) volume
of 200x1000x1000 with 64x128x128 chunks.

    python -m benchmarks.first_steps [--batches 8] [--gunpowder-batches 4]

gunpowder runs in its own virtualenv (benchmarks/.gunpowder-venv, created on first use with
`pip install gunpowder==1.4.4 psutil`; 1.4.4 is the newest release pip installs here), in a
subprocess, as does daskgp, so each has its own peak RSS. Prints seconds and CPU-seconds per
batch (median, min, max), peak RSS, a per-node breakdown, the ratios, and writes
benchmarks/results/first_steps.json and first_steps.png.
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
RAW_SHAPE, GT_SHAPE = (84, 268, 268), (56, 56, 56)
DATASETS = {"RAW": "volumes/raw", "GT": "volumes/labels/neuron_ids",
            "MASK": "volumes/labels/mask"}


def run_batches(request_batch, batches: int, warmup: int) -> tuple[list, list, list]:
    walls, cpus, results = [], [], []
    for i in range(warmup + batches):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = request_batch()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        if i >= warmup:
            walls.append(wall)
            cpus.append(cpu)
            results.append(result)
    return walls, cpus, results


# --- daskgp (in a subprocess of this venv) -----------------------------------------------------


def worker_daskgp(path: str, batches: int, warmup: int) -> dict:
    from _common import seed_pipeline
    from dask.diagnostics import Profiler

    import daskgp as gp
    from daskgp.names import task_prefix
    from daskgp.profiling import ProfilingStats, collecting

    upstream = []

    class RecordUpstream(gp.BatchFilter):
        """Records the ROIs ElasticAugment asks for (for the floor); changes nothing."""

        lazy = True

        def prepare(self, request):
            upstream.append({str(k): (tuple(s.roi.begin), tuple(s.roi.shape))
                             for k, s in request.array_specs.items()})

    pipeline, request = seed_pipeline(Path(path), after_random_location=RecordUpstream())
    prefixes = {task_prefix(n): n for n in ("ZarrSource", "Normalize", "RandomLocation",
                                            "ElasticAugment", "SimpleAugment",
                                            "IntensityAugment")}
    stats = ProfilingStats()
    with gp.build(pipeline, scheduler="threads", seed=0) as p:
        def one():
            with collecting(stats):
                lazy = p.request_lazy_batch(request)
            with Profiler() as profiler:
                batch = lazy.compute(scheduler="threads")
            stats.add_tasks([(r.key, r.start_time, r.end_time) for r in profiler.results],
                            prefixes)
            return batch

        walls, cpus, _ = run_batches(one, batches, warmup)
    stats.batches = warmup + batches
    nodes = {node: {phase: s / stats.batches for phase, s in phases.items()}
             for node, phases in stats.seconds.items()}
    return {"wall_s": walls, "cpu_s": cpus, "nodes_s_per_batch": nodes,
            "upstream_rois": upstream[warmup:], "peak_rss_mb": peak_rss_mb()}


def floor(path: str, upstream_rois: list, seed: int = 0) -> dict:
    """One read of each upstream ROI plus one map_coordinates per array, single-threaded.

    The coordinates (made before timing) rotate the output about its centre in (y, x) by an
    angle from the same range as the pipeline's, so memory access is like the real warp's;
    map_coordinates' cost depends on it (a plain shift is about 3x cheaper).
    """
    import numpy as np
    import zarr
    from scipy import ndimage

    root = zarr.open_group(path, mode="r")
    outputs = {"RAW": RAW_SHAPE, "GT": GT_SHAPE, "MASK": GT_SHAPE}
    rng = np.random.default_rng(seed)
    walls, cpus = [], []
    for rois in upstream_rois:
        angle = rng.uniform(0, math.pi / 2)
        cos, sin = np.float32(math.cos(angle)), np.float32(math.sin(angle))
        prepared = {}
        for key, (_, shape) in rois.items():
            out = outputs[key]
            z, y, x = np.meshgrid(*(np.arange(o, dtype=np.float32) - (o - 1) / 2 for o in out),
                                  indexing="ij")
            centre = [(s - 1) / 2 for s in shape]
            prepared[key] = np.stack([z + centre[0], cos * y - sin * x + centre[1],
                                      sin * y + cos * x + centre[2]])
        wall, cpu = time.perf_counter(), cpu_seconds()
        for key, (_, shape) in rois.items():
            # The recorded ROIs are relative to the request (RandomLocation shifts them):
            # read the same shape at the volume's centre.
            dataset = root[DATASETS[key]]
            region = tuple(slice((v - s) // 2, (v - s) // 2 + s)
                           for v, s in zip(dataset.shape, shape, strict=True))
            data = dataset[region]
            assert data.shape == tuple(shape), (data.shape, shape)
            if key == "RAW":
                data = data.astype(np.float32)
            ndimage.map_coordinates(data, prepared[key], order=1 if key == "RAW" else 0,
                                    mode="constant", cval=0)
        walls.append(time.perf_counter() - wall)
        cpus.append(cpu_seconds() - cpu)
    return {"wall_s": walls, "cpu_s": cpus}


# --- gunpowder (in a subprocess of its own venv) ------------------------------------------------


def worker_gunpowder(path: str, batches: int, warmup: int) -> dict:
    from importlib.metadata import version

    import gunpowder as gp

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    source = gp.ZarrSource(path, {raw: DATASETS["RAW"], gt: DATASETS["GT"],
                                  mask: DATASETS["MASK"]})
    pipeline = (source + gp.Normalize(raw) + gp.RandomLocation()
                + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                + gp.SimpleAugment(transpose_only=[1, 2])
                + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1))
    request = gp.BatchRequest()
    request.add(raw, RAW_SHAPE)
    request.add(gt, GT_SHAPE)
    request.add(mask, GT_SHAPE)
    nodes: dict = {}
    with gp.build(pipeline) as p:
        walls, cpus, results = run_batches(lambda: p.request_batch(request), batches, warmup)
    for batch in results:
        for (node, method), timing in batch.profiling_stats.get_timing_summaries().items():
            name = node.split("[")[0]
            nodes.setdefault(name, {}).setdefault(method, 0.0)
            nodes[name][method] += sum(timing.times) / len(results)
    return {"wall_s": walls, "cpu_s": cpus, "nodes_s_per_batch": nodes,
            "peak_rss_mb": peak_rss_mb(), "version": version("gunpowder")}


# --- orchestration ---------------------------------------------------------------------------


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    names = list(results["engines"])
    for i, metric in enumerate(("wall_s", "cpu_s")):
        values = [results["engines"][n][metric]["median"] for n in names]
        axes[i].bar(names, values, color=["tab:blue", "tab:orange", "tab:gray"][: len(names)])
        axes[i].set_yscale("log")
        axes[i].set_ylabel(f"{metric.replace('_s', '')} seconds per batch (median, log)")
        for x, v in enumerate(values):
            axes[i].text(x, v, f"{v:.3g}", ha="center", va="bottom")
    fig.suptitle("seed pipeline, 84x268x268 + 2x56^3: daskgp vs gunpowder vs floor")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["daskgp", "gunpowder"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--gunpowder-batches", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.worker:
        work = worker_daskgp if args.worker == "daskgp" else worker_gunpowder
        print(json.dumps(work(str(args.data), args.batches, args.warmup)))
        return

    sys.path.insert(0, str(HERE.parent))
    from benchmarks._common import ensure_dataset

    path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"data {path}; cores seen: {os.cpu_count()}", flush=True)
    daskgp = run_worker(sys.executable, "first_steps.py", "daskgp", "--data", str(path),
                        "--batches", str(args.batches), "--warmup", str(args.warmup))
    gunpowder = run_worker(str(ensure_gunpowder_venv()), "first_steps.py", "gunpowder",
                           "--data", str(path), "--batches", str(args.gunpowder_batches),
                           "--warmup", str(args.warmup))
    floor_result = floor(str(path), daskgp["upstream_rois"])
    engines = {}
    for name, result in (("daskgp", daskgp), (f"gunpowder {gunpowder['version']}", gunpowder),
                         ("floor", floor_result)):
        engines[name] = {"wall_s": summary(result["wall_s"]), "cpu_s": summary(result["cpu_s"]),
                         "peak_rss_mb": result.get("peak_rss_mb"),
                         "nodes_s_per_batch": result.get("nodes_s_per_batch")}
    gp_name = f"gunpowder {gunpowder['version']}"
    ratios = {
        "batches_per_cpu_s_daskgp_over_gunpowder":
            engines[gp_name]["cpu_s"]["median"] / engines["daskgp"]["cpu_s"]["median"],
        "batches_per_wall_s_daskgp_over_gunpowder":
            engines[gp_name]["wall_s"]["median"] / engines["daskgp"]["wall_s"]["median"],
        "daskgp_cpu_over_floor_cpu":
            engines["daskgp"]["cpu_s"]["median"] / engines["floor"]["cpu_s"]["median"],
        "daskgp_wall_over_floor_wall":
            engines["daskgp"]["wall_s"]["median"] / engines["floor"]["wall_s"]["median"],
    }
    for name, e in engines.items():
        rss = f", peak RSS {e['peak_rss_mb']:.0f} MiB" if e["peak_rss_mb"] else ""
        print(f"{name:>16}: {e['wall_s']['median']:.3f} s/batch (min {e['wall_s']['min']:.3f}, "
              f"max {e['wall_s']['max']:.3f}), {e['cpu_s']['median']:.3f} CPU-s/batch{rss}")
        for node, phases in (e["nodes_s_per_batch"] or {}).items():
            cells = ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in phases.items())
            print(f"{'':>18}{node}: {cells}")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    (args.out / "first_steps.json").write_text(json.dumps(
        {"cores": os.cpu_count(), "engines": engines, "ratios": ratios,
         "batches": {"daskgp": args.batches, "gunpowder": args.gunpowder_batches}}, indent=2))
    plot({"engines": engines}, args.out / "first_steps.png")
    print(f"wrote {args.out / 'first_steps.json'} and {args.out / 'first_steps.png'}")


if __name__ == "__main__":
    main()
