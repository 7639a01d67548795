"""Blockwise prediction over a volume, written to zarr: daskgp's Scan + ZarrWrite (one dask
graph) vs gunpowder's Scan + ZarrWrite, same data, same model, same machine, in one run.

The model is a small fixed 3D convolution (3x5x5, with context) run with scipy in a
gunpowder-style numpy node, identical code for both engines (only the import differs).

    python -m benchmarks.predict [--roi-shape 130 772 772] [--block 32 128 128]

Prints output voxels/s, wall and CPU seconds for each engine and their ratio, and whether each
output equals the whole-volume reference; writes benchmarks/results/predict.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runner import cpu_seconds, ensure_gunpowder_venv, run_worker

HERE = Path(__file__).resolve().parent
CONTEXT = (1, 2, 2)


def kernel():
    import numpy as np

    z, y, x = np.meshgrid(*(np.arange(-c, c + 1) for c in CONTEXT), indexing="ij")
    weights = np.exp(-(z**2 + (y**2 + x**2) / 2.0)).astype(np.float32)
    return weights / weights.sum()


def convolve_valid(data):
    """The model: a 3x5x5 convolution, valid part only."""
    from scipy import ndimage

    out = ndimage.convolve(data.astype("float32"), kernel(), mode="constant")
    return out[tuple(slice(c, s - c) for c, s in zip(CONTEXT, data.shape, strict=True))]


def make_model_node(gp):
    """The same numpy node class for either engine (``gp`` is gunpowder or daskgp)."""

    class Convolve(gp.BatchFilter):
        uses_global_random = False  # daskgp: no global RNG, so tasks run in parallel

        def __init__(self, raw, prediction):
            self.raw, self.prediction = raw, prediction

        def setup(self):
            spec = self.spec[self.raw].copy()
            context = gp.Coordinate(CONTEXT) * spec.voxel_size
            spec.roi = spec.roi.grow(-context, -context)
            spec.dtype = __import__("numpy").dtype("float32")
            self.provides(self.prediction, spec)

        def prepare(self, request):
            deps = gp.BatchRequest()
            context = gp.Coordinate(CONTEXT) * self.spec[self.raw].voxel_size
            deps[self.raw] = gp.ArraySpec(roi=request[self.prediction].roi.grow(context,
                                                                                 context))
            return deps

        def process(self, batch, request):
            spec = self.spec[self.prediction].copy()
            spec.roi = request[self.prediction].roi
            out = gp.Batch()
            out[self.prediction] = gp.Array(convolve_valid(batch[self.raw].data), spec)
            return out

    return Convolve


def worker(engine: str, data: str, out: str, roi_offset, roi_shape, block,
           num_workers: int) -> dict:
    if engine == "gunpowder":
        import gunpowder as gp
    else:
        import daskgp as gp
    raw, prediction = gp.ArrayKey("RAW"), gp.ArrayKey("PREDICTION")
    roi = gp.Roi(roi_offset, roi_shape)
    reference = gp.BatchRequest()
    reference.add(raw, gp.Coordinate(block) + gp.Coordinate(CONTEXT) * 2)
    reference.add(prediction, gp.Coordinate(block))
    pipeline = (gp.ZarrSource(data, {raw: "volumes/raw"},
                              {raw: gp.ArraySpec(interpolatable=True)})
                + gp.Normalize(raw) + gp.Crop(raw, roi) + make_model_node(gp)(raw, prediction)
                + gp.ZarrWrite({prediction: "prediction"}, output_dir=str(Path(out).parent),
                               output_filename=Path(out).name)
                + gp.Scan(reference, num_workers=num_workers))
    kwargs = {} if engine == "gunpowder" else {"scheduler": "threads"}
    wall, cpu = time.perf_counter(), cpu_seconds(children=True)
    with gp.build(pipeline, **kwargs) as p:
        p.request_batch(gp.BatchRequest())
    return {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_seconds(children=True) - cpu}


def check(data: str, out: str, roi_offset, roi_shape) -> dict:
    """Compare the written prediction with the model applied to the whole ROI at once."""
    import numpy as np
    import zarr

    region = tuple(slice(o, o + s) for o, s in zip(roi_offset, roi_shape, strict=True))
    raw = zarr.open_group(data, mode="r")["volumes/raw"][region].astype(np.float32) / 255
    expected = convolve_valid(raw)
    written = zarr.open_group(out, mode="r")["prediction"][...]
    same_shape = written.shape == expected.shape
    return {"shape": list(written.shape), "matches_reference": bool(
        same_shape and np.allclose(written, expected, atol=1e-5)),
        "max_abs_error": float(np.abs(written - expected).max()) if same_shape else None,
        "voxels": int(expected.size)}


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    values = [results[n]["voxels_per_s"] / 1e6 for n in names]
    ax.bar(names, values, color=["tab:blue", "tab:orange"][: len(names)])
    for x, v in enumerate(values):
        ax.text(x, v, f"{v:.2f}", ha="center", va="bottom")
    ax.set_ylabel("output Mvoxels / s")
    ax.set_title("blockwise prediction to zarr (3x5x5 convolution)")
    fig.tight_layout()
    fig.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=["daskgp", "gunpowder"])
    parser.add_argument("--data")
    parser.add_argument("--output")
    parser.add_argument("--roi-offset", type=int, nargs=3, default=(32, 100, 100))
    parser.add_argument("--roi-shape", type=int, nargs=3, default=(130, 772, 772))
    parser.add_argument("--block", type=int, nargs=3, default=(32, 128, 128))
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    common = ["--roi-offset", *map(str, args.roi_offset), "--roi-shape",
              *map(str, args.roi_shape), "--block", *map(str, args.block),
              "--num-workers", str(args.num_workers)]
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.output, args.roi_offset,
                                args.roi_shape, args.block, args.num_workers)))
        return

    sys.path.insert(0, str(HERE.parent))
    from benchmarks._common import ensure_dataset

    data = str(ensure_dataset("em_200x1000x1000", (200, 1000, 1000)))
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"cores seen: {os.cpu_count()}; ROI {args.roi_shape} at {args.roi_offset}, "
          f"blocks {args.block}, num_workers {args.num_workers}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine, python in (("daskgp", sys.executable),
                               ("gunpowder", str(ensure_gunpowder_venv()))):
            output = str(Path(tmp) / f"{engine}.zarr")
            timing = run_worker(python, "predict.py", engine, "--data", data, "--output",
                                output, *common)
            result = {**timing, **check(data, output, args.roi_offset, args.roi_shape)}
            result["voxels_per_s"] = result["voxels"] / result["wall_s"]
            results[engine] = result
            print(f"{engine:>10}: {result['voxels_per_s'] / 1e6:.2f} Mvoxels/s, "
                  f"{result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} CPU-s, output "
                  f"{'equals' if result['matches_reference'] else 'DIFFERS FROM'} the "
                  f"whole-volume reference (max error {result['max_abs_error']})", flush=True)
    ratio = results["daskgp"]["voxels_per_s"] / results["gunpowder"]["voxels_per_s"]
    print(f"voxels/s daskgp over gunpowder: {ratio:.2f}x")
    (args.out / "predict.json").write_text(json.dumps(
        {"cores": os.cpu_count(), "args": {k: v for k, v in vars(args).items()
                                           if k not in ("out", "worker")},
         "results": results, "ratio_daskgp_over_gunpowder": ratio}, indent=2, default=str))
    plot(results, args.out / "predict.png")
    print(f"wrote {args.out / 'predict.json'} and {args.out / 'predict.png'}")


if __name__ == "__main__":
    main()
