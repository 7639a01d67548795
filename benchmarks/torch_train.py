"""Training iterations per second with torch: the seed pipeline + PreCache + torch ``Train`` of a
small model, daskgp vs gunpowder 1.5.0, same data, same run.

Pipeline (both sides): ZarrSource + Normalize + RandomLocation + ElasticAugment([4,40,40],
[0,2,2], [0, pi/2]) + SimpleAugment(transpose_only=[1,2]) + IntensityAugment(raw, 0.9, 1.1,
-0.1, 0.1) + Unsqueeze x2 + PreCache(cache_size, num_workers) + torch Train; request raw
84x268x268, mask and prediction 56^3 voxels, on a synthetic EM-like zarr (format 2) volume.
The model (``SmallNet``: crop the raw to 58^3 about its centre, Conv3d 1->4 3x3x3, ReLU,
Conv3d 4->1 1x1x1, sigmoid; MSE against the mask; Adam) costs milliseconds, so the pipeline
feeding it sets the pace, which is what this measures.

    python -m benchmarks.torch_train [--iterations 30] [--gunpowder-iterations 8] [--quick]

Each side runs in a subprocess (gunpowder in its own virtualenv: $DASKGP_GUNPOWDER_PYTHON, else
benchmarks/.gunpowder-venv; torch is installed there if missing). After ``--warmup`` iterations
(the caches fill), the timed iterations give iterations per second (wall) and CPU-seconds per
iteration (this process and its child processes: gunpowder's PreCache workers). Prints both
and the ratio, writes benchmarks/results/torch_train.json and torch_train.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# this checkout's daskgp, also in the worker subprocesses (run_worker's PYTHONPATH is benchmarks/)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runner import ensure_gunpowder_venv, peak_rss_mb, run_worker

HERE = Path(__file__).resolve().parent
RAW_SHAPE, GT_SHAPE = (84, 268, 268), (56, 56, 56)
DATASETS = {"RAW": "volumes/raw", "GT": "volumes/labels/neuron_ids",
            "MASK": "volumes/labels/mask"}


def small_net():
    """The model and its loss and optimizer, the same on both sides (seeded)."""
    import torch

    class SmallNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv3d(1, 4, 3)
            self.head = torch.nn.Conv3d(4, 1, 1)

        def forward(self, raw):
            margin = [(r - g - 2) // 2 for r, g in zip(RAW_SHAPE, GT_SHAPE, strict=True)]
            crop = raw[(..., *(slice(m, m + g + 2) for m, g in zip(margin, GT_SHAPE,
                                                                    strict=True)))]
            return torch.sigmoid(self.head(torch.relu(self.conv(crop))))

    torch.manual_seed(0)
    model = SmallNet()
    return model, torch.nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-3)


def cpu_seconds_with_children() -> float:
    """User + system CPU seconds of this process and its live children (gunpowder's PreCache
    workers run as child processes until teardown, which ``getrusage`` does not count)."""
    import psutil

    process = psutil.Process()
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def timed_iterations(request_batch, iterations: int, warmup: int) -> dict:
    """Run ``warmup`` then ``iterations`` training iterations; time the latter."""
    for _ in range(warmup):
        request_batch()
    wall, cpu = time.perf_counter(), cpu_seconds_with_children()
    losses = [float(request_batch().loss) for _ in range(iterations)]
    wall, cpu = time.perf_counter() - wall, cpu_seconds_with_children() - cpu
    return {"iterations": iterations, "wall_s": wall, "cpu_s": cpu,
            "iterations_per_s": iterations / wall, "cpu_s_per_iteration": cpu / iterations,
            "losses": losses}


# --- daskgp (in a subprocess of this venv) -----------------------------------------------------


def worker_daskgp(path: str, iterations: int, warmup: int, cache_size: int,
                  num_workers: int, out: str) -> dict:
    from _common import seed_pipeline

    import daskgp as gp

    raw, prediction, mask = gp.ArrayKey("RAW"), gp.ArrayKey("PREDICTION"), gp.ArrayKey("MASK")
    model, loss, optimizer = small_net()
    pipeline, request = seed_pipeline(Path(path))
    request.add(prediction, GT_SHAPE)
    del request[gp.ArrayKey("GT")]
    train = gp.torch.Train(model, loss, optimizer, inputs={0: raw}, outputs={0: prediction},
                           loss_inputs={0: prediction, 1: mask},
                           checkpoint_basename=f"{out}/daskgp/model", save_every=10**9,
                           device="cpu")
    pipeline = (pipeline + gp.AsType(mask, "float32") + gp.Unsqueeze([raw, mask])
                + gp.Unsqueeze([raw, mask]) + gp.PreCache(cache_size, num_workers) + train)
    with gp.build(pipeline, scheduler="threads", seed=0) as p:
        result = timed_iterations(lambda: p.request_batch(request), iterations, warmup)
    return {**result, "peak_rss_mb": peak_rss_mb()}


# --- gunpowder (in a subprocess of its own venv) ------------------------------------------------


def worker_gunpowder(path: str, iterations: int, warmup: int, cache_size: int,
                     num_workers: int, out: str) -> dict:
    import math
    from importlib.metadata import version

    import gunpowder as gp
    import numpy as np

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    prediction = gp.ArrayKey("PREDICTION")
    model, loss, optimizer = small_net()
    source = gp.ZarrSource(path, {raw: DATASETS["RAW"], gt: DATASETS["GT"],
                                  mask: DATASETS["MASK"]})
    train = gp.torch.Train(model, loss, optimizer, inputs={0: raw}, outputs={0: prediction},
                           loss_inputs={0: prediction, 1: mask},
                           checkpoint_basename=f"{out}/gunpowder/model", save_every=10**9,
                           device="cpu")
    pipeline = (source + gp.Normalize(raw) + gp.RandomLocation()
                + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                + gp.SimpleAugment(transpose_only=[1, 2])
                + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
                + gp.AsType(mask, np.float32) + gp.Unsqueeze([raw, mask])
                + gp.Unsqueeze([raw, mask]) + gp.PreCache(cache_size, num_workers) + train)
    request = gp.BatchRequest()
    request.add(raw, RAW_SHAPE)
    request.add(mask, GT_SHAPE)
    request.add(prediction, GT_SHAPE)
    with gp.build(pipeline) as p:
        result = timed_iterations(lambda: p.request_batch(request), iterations, warmup)
    return {**result, "peak_rss_mb": peak_rss_mb(), "version": version("gunpowder")}


# --- orchestration ---------------------------------------------------------------------------


def gunpowder_python_with_torch() -> str:
    """gunpowder's interpreter, with torch installed into its virtualenv if it lacks it."""
    python = str(ensure_gunpowder_venv())
    if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode != 0:
        print(f"installing torch for {python} (large: CUDA wheels) ...", flush=True)
        subprocess.run([python, "-m", "pip", "install", "-q", "torch"], check=True)
    return python


def plot(engines: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = list(engines)
    for axis, metric, label in ((axes[0], "iterations_per_s", "training iterations / s (wall)"),
                                (axes[1], "cpu_s_per_iteration", "CPU-s / iteration")):
        values = [engines[name][metric] for name in names]
        axis.bar(names, values, color=["tab:blue", "tab:orange"])
        axis.set_ylabel(label)
        for x, value in enumerate(values):
            axis.text(x, value, f"{value:.3g}", ha="center", va="bottom")
    fig.suptitle("seed pipeline + PreCache + torch Train (small model): daskgp vs gunpowder")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["daskgp", "gunpowder"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--gunpowder-iterations", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--cache-size", type=int, default=8)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true",
                        help="a 100x500x500 volume, 12 + 4 iterations, 2 warm-up")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    if args.quick:
        args.iterations, args.gunpowder_iterations, args.warmup = 12, 4, 2
    settings = [str(args.warmup), str(args.cache_size), str(args.num_workers)]
    if args.worker:
        work = worker_daskgp if args.worker == "daskgp" else worker_gunpowder
        iterations = args.iterations if args.worker == "daskgp" else args.gunpowder_iterations
        print(json.dumps(work(str(args.data), iterations, *map(int, settings),
                              str(args.out))))
        return

    from benchmarks._common import ensure_dataset

    if args.quick:
        path = ensure_dataset("em_100x500x500", (100, 500, 500))
    else:
        path = ensure_dataset("em_200x1000x1000", (200, 1000, 1000))
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = args.out / "torch_train_checkpoints"
    print(f"data {path}; cores seen: {os.cpu_count()}", flush=True)
    common = ["--data", str(path), "--warmup", settings[0], "--cache-size", settings[1],
              "--num-workers", settings[2], "--out", str(scratch)]
    daskgp = run_worker(sys.executable, "torch_train.py", "daskgp", *common,
                        "--iterations", str(args.iterations))
    gunpowder = run_worker(gunpowder_python_with_torch(), "torch_train.py", "gunpowder",
                           *common, "--gunpowder-iterations", str(args.gunpowder_iterations))
    gp_name = f"gunpowder {gunpowder.pop('version')}"
    engines = {"daskgp": daskgp, gp_name: gunpowder}
    ratios = {
        "iterations_per_s_daskgp_over_gunpowder":
            daskgp["iterations_per_s"] / gunpowder["iterations_per_s"],
        "cpu_s_per_iteration_gunpowder_over_daskgp":
            gunpowder["cpu_s_per_iteration"] / daskgp["cpu_s_per_iteration"],
    }
    for name, e in engines.items():
        print(f"{name:>16}: {e['iterations_per_s']:.3f} iterations/s over {e['iterations']} "
              f"({e['cpu_s_per_iteration']:.2f} CPU-s/iteration, peak RSS "
              f"{e['peak_rss_mb']:.0f} MiB), loss {e['losses'][0]:.4f} -> {e['losses'][-1]:.4f}")
    for name, value in ratios.items():
        print(f"{name}: {value:.2f}x")
    result = {"cores": os.cpu_count(), "data": path.name, "raw_shape": RAW_SHAPE,
              "gt_shape": GT_SHAPE, "cache_size": args.cache_size,
              "num_workers": args.num_workers, "warmup": args.warmup, "engines": engines,
              "ratios": ratios}
    (args.out / "torch_train.json").write_text(json.dumps(result, indent=2))
    plot(engines, args.out / "torch_train.png")
    print(f"wrote {args.out / 'torch_train.json'} and {args.out / 'torch_train.png'}")


if __name__ == "__main__":
    main()
