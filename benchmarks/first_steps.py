"""The seed pipeline side by side: daskgp vs gunpowder 1.5.0 on the same data and machine, plus
the floor (the fastest kernels on the same boxes) and a DeformAugment (3D rotation) line.

Pipeline: ZarrSource + Normalize + RandomLocation + ElasticAugment([4,40,40], [0,2,2],
[0, pi/2]) + SimpleAugment(transpose_only=[1,2]) + IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1);
request raw 84x268x268, gt and mask 56^3 voxels, on a synthetic EM-like zarr (format 2) volume
of 200x1000x1000 with 64x128x128 chunks. The DeformAugment line replaces ElasticAugment by
DeformAugment([10,10,10], [2,2,2], rotate=True) (uniform 3D rotations) on raw 48x128x128, gt
and mask 32^3.

    python -m benchmarks.first_steps [--batches 8] [--gunpowder-batches 4] [--quick]

gunpowder runs in its own Python 3.12 virtualenv (``$DASKGP_GUNPOWDER_PYTHON``, else
benchmarks/.gunpowder-venv created on first use with ``pip install gunpowder==1.5.0
psutil``), in a subprocess, as does daskgp, so each has its own peak RSS. Prints seconds and
CPU-seconds per batch (median, min, max), peak RSS, daskgp's CPU per stage (read,
coordinates, warp, intensity, other; measured on extra single-threaded batches), the floor
(one read of each box that daskgp's batch read, with TensorStore as daskgp reads, then
OpenCV remap / the numba nearest kernel on precomputed coordinates, single-threaded; run in
the daskgp worker right after each of its batches, on that batch's boxes, so that a shared
machine's load hits both alike), an extra, informative line "floor + IntensityAugment pass"
(the floor plus the mean and in-place scale and shift that IntensityAugment needs over RAW's
output whatever the engine; the target stays the floor) and the kernels alone
(map_coordinates per section vs remap), the ratios, and writes
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
DEFORM_RAW_SHAPE, DEFORM_GT_SHAPE = (48, 128, 128), (32, 32, 32)
DATASETS = {"RAW": "volumes/raw", "GT": "volumes/labels/neuron_ids",
            "MASK": "volumes/labels/mask"}


def run_batches(request_batch, batches: int, warmup: int,
                after=None) -> tuple[list, list, list]:
    """Seconds and CPU seconds of each batch after ``warmup``; ``after()`` (untimed) runs
    after each batch."""
    walls, cpus, results = [], [], []
    for i in range(warmup + batches):
        wall, cpu = time.perf_counter(), cpu_seconds()
        result = request_batch()
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        if i >= warmup:
            walls.append(wall)
            cpus.append(cpu)
            results.append(result)
        if after is not None:
            after()
    return walls, cpus, results


# --- daskgp (in a subprocess of this venv) -----------------------------------------------------


def deform_pipeline(path: Path):
    """The seed pipeline with DeformAugment (uniform 3D rotations) instead of ElasticAugment."""
    import daskgp as gp

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    source = gp.ZarrSource(str(path), {raw: DATASETS["RAW"], gt: DATASETS["GT"],
                                       mask: DATASETS["MASK"]})
    pipeline = (source + gp.Normalize(raw) + gp.RandomLocation()
                + gp.DeformAugment([10, 10, 10], [2, 2, 2], rotate=True))
    request = gp.BatchRequest()
    request.add(raw, DEFORM_RAW_SHAPE)
    request.add(gt, DEFORM_GT_SHAPE)
    request.add(mask, DEFORM_GT_SHAPE)
    return pipeline, request


class StageClock:
    """CPU seconds of the calling thread spent in wrapped functions, per stage."""

    def __init__(self) -> None:
        import threading

        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    def wrap(self, owner, name: str, stage: str) -> None:
        function = getattr(owner, name)

        def timed(*args, **kwargs):
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                with self._lock:
                    self.seconds[stage] = self.seconds.get(stage, 0.0) + (
                        time.thread_time() - start)

        setattr(owner, name, timed)


def stage_seconds(p, request, batches: int) -> dict:
    """CPU per batch and stage, from ``batches`` single-threaded batches: read (the zarr
    reads, with zarr's own threads), coordinates, warp (interpolation, with the fused
    normalization), intensity (IntensityAugment, in its own tasks or fused at the end of the
    warp's), other (the rest)."""
    from daskgp.io import region
    from daskgp.nodes import intensity_augment
    from daskgp.transforms import _elastic, _warp

    clock = StageClock()
    clock.wrap(region.RegionView, "__getitem__", "read")
    for name in ("planar_slab", "evaluate"):
        clock.wrap(_elastic.CoordinateSlabs, name, "coordinates")
    for name in ("_sample_section", "_sample_volume"):
        clock.wrap(_warp, name, "warp")
    # Source sections gathered from the read blocks and normalized (a fused Normalize).
    clock.wrap(_warp.SourceBlocks, "section", "warp")
    clock.wrap(intensity_augment, "_scale_shift", "intensity")
    # IntensityAugment fused into the warp's task (in place, at its end).
    clock.wrap(_warp.ScaleShift, "apply", "intensity")
    process, thread = cpu_seconds(), time.thread_time()
    for _ in range(batches):
        p.request_lazy_batch(request).compute(scheduler="sync")
    process, thread = cpu_seconds() - process, time.thread_time() - thread
    stages = {stage: seconds / batches for stage, seconds in clock.seconds.items()}
    # zarr decodes on its own threads: what the process spent beyond this thread is reading.
    stages["read"] = stages.get("read", 0.0) + (process - thread) / batches
    stages["other"] = process / batches - sum(stages.values())
    stages["total"] = process / batches
    return stages


def worker_daskgp(path: str, batches: int, warmup: int, kind: str = "seed") -> dict:
    from _common import seed_pipeline
    from dask.diagnostics import Profiler

    import daskgp as gp
    from daskgp.names import task_prefix
    from daskgp.profiling import ProfilingStats, collecting

    upstream = []

    class RecordUpstream(gp.BatchFilter):
        """Records the ROIs the source is asked for (below RandomLocation: the boxes read,
        for the floor); changes nothing."""

        lazy = True

        def prepare(self, request):
            upstream.append({str(k): (tuple(s.roi.begin), tuple(s.roi.shape))
                             for k, s in request.array_specs.items()})

    if kind == "seed":
        pipeline, request = seed_pipeline(Path(path), before_random_location=RecordUpstream())
    else:
        pipeline, request = deform_pipeline(Path(path))
    prefixes = {task_prefix(n): n for n in ("ZarrSource", "Normalize", "RandomLocation",
                                            "ElasticAugment", "DeformAugment",
                                            "SimpleAugment", "IntensityAugment")}
    stats = ProfilingStats()
    floors = FloorBatches(path) if kind == "seed" else None
    done = []
    with gp.build(pipeline, scheduler="threads", seed=0) as p:
        def one():
            # Per-node times of the timed batches only (warm-up batches compile kernels).
            timed = ProfilingStats() if len(done) < warmup else stats
            done.append(None)
            with collecting(timed):
                lazy = p.request_lazy_batch(request)
            with Profiler() as profiler:
                batch = lazy.compute(scheduler="threads")
            timed.add_tasks([(r.key, r.start_time, r.end_time) for r in profiler.results],
                            prefixes)
            return batch

        # The floor of each batch right after it (untimed there): both see the same load.
        walls, cpus, _ = run_batches(one, batches, warmup, after=None if floors is None
                                     else lambda: floors.run(upstream[-1]))
        stats.batches = batches
        rss = peak_rss_mb()
        stages = stage_seconds(p, request, max(2, batches // 2)) if kind == "seed" else None
    nodes = {node: {phase: s / stats.batches for phase, s in phases.items()}
             for node, phases in stats.seconds.items()}
    result = {"wall_s": walls, "cpu_s": cpus, "nodes_s_per_batch": nodes,
              "upstream_rois": upstream[warmup:warmup + batches], "peak_rss_mb": rss,
              "stages_cpu_s_per_batch": stages}
    if floors is not None:
        result["floor"] = {"wall_s": floors.walls[warmup:], "cpu_s": floors.cpus[warmup:]}
        result["floor_with_intensity"] = {
            "wall_s": [w + i for w, i in zip(floors.walls, floors.intensity_walls,
                                             strict=True)][warmup:],
            "cpu_s": [c + i for c, i in zip(floors.cpus, floors.intensity_cpus,
                                            strict=True)][warmup:]}
    return result


def _rotation_maps(out_shape, box_shape, angle):
    """float32 (rows, columns) per section rotating the output about the box centre."""
    import numpy as np

    y, x = np.meshgrid(*(np.arange(o, dtype=np.float64) - (o - 1) / 2 for o in out_shape[1:]),
                       indexing="ij")
    centre = [(s - 1) / 2 for s in box_shape[1:]]
    cos, sin = math.cos(angle), math.sin(angle)
    rows = (cos * y + sin * x + centre[0]).astype(np.float32)
    columns = (cos * x - sin * y + centre[1]).astype(np.float32)
    return rows, columns


class FloorBatches:
    """The floor, one batch at a time: one read of each box the batch's source read (the
    same chunks decompressed), with the fastest reader here (TensorStore, as daskgp reads local
    zarr; zarr-python where TensorStore cannot open the dataset), then the fastest
    kernels (OpenCV remap of each normalized section for RAW, the numba nearest kernel for GT
    and MASK) on precomputed coordinates (a rotation in y, x by an angle from the pipeline's
    range, made before timing), single-threaded. ``run`` is called in the daskgp worker right
    after each of its batches, so that both see the same load on a shared machine."""

    def __init__(self, path: str, seed: int = 0) -> None:
        import numpy as np
        import zarr

        from daskgp.io import tensorstore_io

        self.root = zarr.open_group(path, mode="r")
        # The floor reads the very boxes daskgp just read: through daskgp's read cache (one
        # per process, when DASKGP_ZARR_READ_CACHE turns it on) every chunk would be decoded
        # already. Its own cache of the same size instead (none by default): the same hits
        # daskgp gets from earlier batches, no more.
        context = (tensorstore_io.new_context(tensorstore_io.read_cache_bytes())
                   if tensorstore_io.enabled() else None)
        self.handles = {key: tensorstore_io.open_local(path, dataset, self.root[dataset],
                                                       context=context)
                        for key, dataset in DATASETS.items()}
        self.rng = np.random.default_rng(seed)
        self.walls: list[float] = []
        self.cpus: list[float] = []
        # The extra line only: IntensityAugment's own pass over RAW's output (its mean and one
        # in-place scale and shift, daskgp's kernels), timed apart from the floor.
        self.intensity_walls: list[float] = []
        self.intensity_cpus: list[float] = []

    def run(self, rois: dict) -> None:
        import numpy as np

        from daskgp.io import tensorstore_io
        from daskgp.transforms._kernels import bilinear, nearest_section

        outputs = {"RAW": RAW_SHAPE, "GT": GT_SHAPE, "MASK": GT_SHAPE}
        angle = self.rng.uniform(0, math.pi / 2)
        maps = {key: _rotation_maps(outputs[key], shape, angle) for key, (_, shape)
                in rois.items()}
        results = {key: np.empty(outputs[key], np.float32 if key == "RAW" else
                                 self.root[DATASETS[key]].dtype) for key in rois}
        wall, cpu = time.perf_counter(), cpu_seconds()
        for key, (begin, shape) in rois.items():
            # The very box daskgp read (voxel size 1, offset 0: world = voxels), so that both
            # decompress the same zarr chunks.
            box = tuple(slice(b, b + s) for b, s in zip(begin, shape, strict=True))
            handle = self.handles[key]
            data = (self.root[DATASETS[key]][box] if handle is None
                    else tensorstore_io.read(handle, box))
            rows, columns = maps[key]
            out = results[key]
            first = (shape[0] - outputs[key][0]) // 2
            for z in range(outputs[key][0]):
                if key == "RAW":
                    section = data[first + z].astype(np.float32)
                    section *= 1.0 / 255
                    bilinear(section, rows, columns, out[z])
                else:
                    nearest_section(data[first + z], rows, columns, out[z])
        self.walls.append(time.perf_counter() - wall)
        self.cpus.append(cpu_seconds() - cpu)
        from daskgp.transforms import ScaleShift

        wall, cpu = time.perf_counter(), cpu_seconds()
        ScaleShift(float(self.rng.uniform(0.9, 1.1)), float(self.rng.uniform(-0.1, 0.1)),
                   False, "").apply(results["RAW"])
        self.intensity_walls.append(time.perf_counter() - wall)
        self.intensity_cpus.append(cpu_seconds() - cpu)


def kernels_alone(path: str, upstream_rois: list, seed: int = 0) -> dict:
    """The kernels alone on the raw sections of each upstream box: map_coordinates per
    section vs OpenCV's remap, single-threaded, CPU seconds per batch."""
    import numpy as np
    import zarr
    from scipy import ndimage

    from daskgp.transforms._kernels import bilinear

    raw = zarr.open_group(path, mode="r")[DATASETS["RAW"]]
    rng = np.random.default_rng(seed)
    kernel_cpus = {"map_coordinates": [], "remap": []}
    for rois in upstream_rois:
        box = rois["RAW"][1]
        rows, columns = _rotation_maps(RAW_SHAPE, box, rng.uniform(0, math.pi / 2))
        sections = raw[tuple(slice((v - s) // 2, (v - s) // 2 + s) for v, s in
                             zip(raw.shape, box, strict=True))]
        sections = sections[:RAW_SHAPE[0]].astype(np.float32) / 255
        out = np.empty(RAW_SHAPE[1:], np.float32)
        for name in ("map_coordinates", "remap"):
            cpu = cpu_seconds()
            for section in sections:
                if name == "remap":
                    bilinear(section, rows, columns, out)
                else:
                    ndimage.map_coordinates(section, np.stack([rows, columns]), output=out,
                                            order=1, mode="constant", cval=0, prefilter=False)
            kernel_cpus[name].append(cpu_seconds() - cpu)
    return kernel_cpus


# --- gunpowder (in a subprocess of its own venv) ------------------------------------------------


def worker_gunpowder(path: str, batches: int, warmup: int, kind: str = "seed") -> dict:
    from importlib.metadata import version

    import gunpowder as gp

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    source = gp.ZarrSource(path, {raw: DATASETS["RAW"], gt: DATASETS["GT"],
                                  mask: DATASETS["MASK"]})
    pipeline = source + gp.Normalize(raw) + gp.RandomLocation()
    if kind == "seed":
        pipeline = (pipeline + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                    + gp.SimpleAugment(transpose_only=[1, 2])
                    + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1))
        shapes = RAW_SHAPE, GT_SHAPE
    else:
        pipeline = pipeline + gp.DeformAugment([10, 10, 10], [2, 2, 2], rotate=True)
        shapes = DEFORM_RAW_SHAPE, DEFORM_GT_SHAPE
    request = gp.BatchRequest()
    request.add(raw, shapes[0])
    request.add(gt, shapes[1])
    request.add(mask, shapes[1])
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

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    names = list(results["engines"])
    colors = ["tab:blue", "tab:orange", "tab:gray", "silver", "tab:cyan", "tab:red"]
    for i, metric in enumerate(("wall_s", "cpu_s")):
        values = [results["engines"][n][metric]["median"] for n in names]
        axes[i].bar(range(len(names)), values, color=colors[: len(names)])
        axes[i].set_xticks(range(len(names)), names, rotation=20, fontsize=8)
        axes[i].set_yscale("log")
        axes[i].set_ylabel(f"{metric.replace('_s', '')} seconds per batch (median, log)")
        for x, v in enumerate(values):
            axes[i].text(x, v, f"{v:.3g}", ha="center", va="bottom")
    stages = results["stages"]
    bottom = 0.0
    for stage, seconds in stages.items():
        if stage != "total":
            axes[2].bar(["daskgp seed"], [1e3 * seconds], bottom=bottom, label=stage)
            bottom += 1e3 * seconds
    axes[2].set_ylabel("CPU ms per batch (single-threaded batches)")
    axes[2].legend(fontsize=8)
    fig.suptitle("seed pipeline 84x268x268 + 2x56^3 and DeformAugment 48x128x128 + 2x32^3: "
                 "daskgp vs gunpowder vs floor (machine shared, see JSON)")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["daskgp", "gunpowder"])
    parser.add_argument("--kind", choices=["seed", "deform"], default="seed")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--gunpowder-batches", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="4 and 2 batches")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.worker:
        work = worker_daskgp if args.worker == "daskgp" else worker_gunpowder
        print(json.dumps(work(str(args.data), args.batches, args.warmup, args.kind)))
        return
    if args.quick:
        args.batches, args.gunpowder_batches = 4, 2

    sys.path.insert(0, str(HERE.parent))
    from benchmarks._common import ensure_dataset

    path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"data {path}; cores seen: {os.cpu_count()}", flush=True)
    gp_python = str(ensure_gunpowder_venv())
    runs = {}
    for kind in ("seed", "deform"):
        common = ["--data", str(path), "--warmup", str(args.warmup), "--kind", kind]
        runs[kind] = (
            run_worker(sys.executable, "first_steps.py", "daskgp", *common, "--batches",
                       str(args.batches)),
            run_worker(gp_python, "first_steps.py", "gunpowder", *common, "--batches",
                       str(args.gunpowder_batches)),
        )
    daskgp, gunpowder = runs["seed"]
    floor_result = dict(daskgp["floor"],
                        kernel_cpu_s=kernels_alone(str(path), daskgp["upstream_rois"]))
    gp_name = f"gunpowder {gunpowder['version']}"
    engines = {}
    for name, result in (("daskgp", daskgp), (gp_name, gunpowder), ("floor", floor_result),
                         ("floor + IntensityAugment pass (extra line)",
                          daskgp["floor_with_intensity"]),
                         ("daskgp DeformAugment", runs["deform"][0]),
                         (f"{gp_name} DeformAugment", runs["deform"][1])):
        engines[name] = {"wall_s": summary(result["wall_s"]), "cpu_s": summary(result["cpu_s"]),
                         "peak_rss_mb": result.get("peak_rss_mb"),
                         "nodes_s_per_batch": result.get("nodes_s_per_batch")}
    kernels = {name: summary(v) for name, v in floor_result["kernel_cpu_s"].items()}

    def ratio(a, b, metric="cpu_s"):
        return engines[b][metric]["median"] / engines[a][metric]["median"]

    ratios = {
        "batches_per_cpu_s_daskgp_over_gunpowder": ratio("daskgp", gp_name),
        "batches_per_wall_s_daskgp_over_gunpowder": ratio("daskgp", gp_name, "wall_s"),
        "daskgp_cpu_over_floor_cpu": 1 / ratio("daskgp", "floor"),
        "daskgp_wall_over_floor_wall": 1 / ratio("daskgp", "floor", "wall_s"),
        # Informative only (the target is the floor above): the floor plus the pass that
        # IntensityAugment needs over RAW's output whatever the engine.
        "daskgp_cpu_over_floor_with_intensity_cpu":
            1 / ratio("daskgp", "floor + IntensityAugment pass (extra line)"),
        "deform_batches_per_cpu_s_daskgp_over_gunpowder":
            ratio("daskgp DeformAugment", f"{gp_name} DeformAugment"),
        "deform_batches_per_wall_s_daskgp_over_gunpowder":
            ratio("daskgp DeformAugment", f"{gp_name} DeformAugment", "wall_s"),
        "kernel_map_coordinates_over_remap":
            kernels["map_coordinates"]["median"] / kernels["remap"]["median"],
    }
    for name, e in engines.items():
        rss = f", peak RSS {e['peak_rss_mb']:.0f} MiB" if e["peak_rss_mb"] else ""
        print(f"{name:>28}: {e['wall_s']['median']:.3f} s/batch (min {e['wall_s']['min']:.3f}, "
              f"max {e['wall_s']['max']:.3f}), {e['cpu_s']['median']:.3f} CPU-s/batch{rss}")
        for node, phases in (e["nodes_s_per_batch"] or {}).items():
            cells = ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in phases.items())
            print(f"{'':>30}{node}: {cells}")
    stages = daskgp["stages_cpu_s_per_batch"]
    print("daskgp CPU per stage (ms/batch): " + ", ".join(
        f"{k} {1e3 * v:.1f}" for k, v in stages.items()))
    print("kernels alone, raw sections (CPU ms/batch): " + ", ".join(
        f"{k} {1e3 * v['median']:.1f}" for k, v in kernels.items()))
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    (args.out / "first_steps.json").write_text(json.dumps(
        {"cores": os.cpu_count(), "load_average": os.getloadavg(), "engines": engines,
         "stages_cpu_s_per_batch": stages, "kernels_cpu_s_per_batch": kernels,
         "ratios": ratios,
         "batches": {"daskgp": args.batches, "gunpowder": args.gunpowder_batches}}, indent=2))
    plot({"engines": engines, "stages": stages}, args.out / "first_steps.png")
    print(f"wrote {args.out / 'first_steps.json'} and {args.out / 'first_steps.png'}")


if __name__ == "__main__":
    main()
