"""gunpowder's "first steps" pipeline with ``import daskgp as gp``, trained with PyTorch.

The same pipeline as ``first_steps.py`` — ZarrSource, Normalize, RandomLocation,
ElasticAugment, SimpleAugment, IntensityAugment, PreCache — with ``gp.torch.Train`` training a
small 3D U-Net (torch, channels first) to predict neuron boundaries from raw, with checkpoints
in gunpowder's format (``model_checkpoint_<i>``; a rerun resumes), TensorBoard logs and
periodic snapshots.

    python examples/first_steps_torch.py                   # a few minutes on 2 cores
    python examples/first_steps_torch.py --client          # on a LocalCluster, with its dashboard
    python examples/first_steps_torch.py --device cuda --iterations 2000 --raw-shape 36 196 196
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
from first_steps import (
    GT_DATASET,
    MASK_DATASET,
    RAW_DATASET,
    AddBoundaries,
    source_voxel_size,
)

import daskgp as gp


class UNet(torch.nn.Module):
    """A small 3D U-Net with valid convolutions and (1, 2, 2) downsampling, on (N, 1, z, y, x)."""

    def __init__(self, features: int = 8) -> None:
        super().__init__()

        def block(channels_in: int, channels_out: int) -> torch.nn.Sequential:
            return torch.nn.Sequential(
                torch.nn.Conv3d(channels_in, channels_out, 3), torch.nn.ReLU(),
                torch.nn.Conv3d(channels_out, channels_out, 3), torch.nn.ReLU())

        self.down = block(1, features)
        self.pool = torch.nn.MaxPool3d((1, 2, 2))
        self.bottom = block(features, 2 * features)
        self.upsample = torch.nn.Upsample(scale_factor=(1, 2, 2))
        self.up = block(3 * features, features)
        self.head = torch.nn.Conv3d(features, 1, 1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        skip = self.down(raw)
        up = self.upsample(self.bottom(self.pool(skip)))
        margin = [(s - u) // 2 for s, u in zip(skip.shape[2:], up.shape[2:], strict=True)]
        skip = skip[(..., *(slice(m, m + u) for m, u in zip(margin, up.shape[2:], strict=True)))]
        return torch.sigmoid(self.head(self.up(torch.cat([skip, up], dim=1))))

    def output_shape(self, input_shape) -> tuple[int, ...]:
        """The spatial output shape for a spatial input shape (valid convolutions shrink it)."""
        with torch.no_grad():
            return tuple(self(torch.zeros((1, 1, *input_shape))).shape[2:])


def masked_mse(prediction: torch.Tensor, target: torch.Tensor,
               mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the voxels where the mask is set."""
    mask = mask.to(prediction.dtype)
    return torch.sum(mask * (prediction - target) ** 2) / (torch.sum(mask) + 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="zarr or HDF5 file with the seed's datasets (default: synthetic)")
    parser.add_argument("--out", type=Path, default=Path("runs/first_steps_torch"))
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--raw-shape", type=int, nargs=3, default=(20, 64, 64),
                        help="network input in voxels; the output size follows from the U-Net")
    parser.add_argument("--volume-shape", type=int, nargs=3, default=(100, 400, 400),
                        help="shape of the synthetic dataset, when --data is not given")
    parser.add_argument("--snapshot-every", type=int, default=250)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--client", action="store_true",
                        help="compute on a dask.distributed LocalCluster and print its dashboard")
    args = parser.parse_args()

    from tqdm import tqdm

    data = args.data
    if data is None:
        from daskgp.synthetic import make_em_like_dataset

        shape = "x".join(map(str, args.volume_shape))
        data = Path(f"data/first_steps_sample_{shape}.zarr")
        if not data.exists():
            print(f"creating a synthetic EM-like dataset in {data} ...", flush=True)
            make_em_like_dataset(data, shape=tuple(args.volume_shape), seed=args.seed)

    raw, gt, gt_mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    boundaries, prediction = gp.ArrayKey("BOUNDARIES"), gp.ArrayKey("PREDICTION")
    source_class = gp.Hdf5Source if str(data).endswith((".hdf", ".h5", ".hdf5")) else gp.ZarrSource
    source = source_class(str(data), {raw: RAW_DATASET, gt: GT_DATASET, gt_mask: MASK_DATASET})

    torch.manual_seed(args.seed)
    model = UNet()
    output_shape = model.output_shape(args.raw_shape)
    args.out.mkdir(parents=True, exist_ok=True)
    train = gp.torch.Train(
        model, loss=masked_mse, optimizer=torch.optim.Adam(model.parameters(), lr=1e-3),
        inputs={"raw": raw}, outputs={0: prediction},
        loss_inputs={0: prediction, 1: boundaries, 2: gt_mask},
        checkpoint_basename=str(args.out / "model"), save_every=args.save_every,
        log_dir=str(args.out / "log"), device=args.device)
    snapshot = gp.Snapshot(
        {raw: "volumes/raw", gt: "volumes/labels/neuron_ids", boundaries: "volumes/boundaries",
         prediction: "volumes/prediction"},
        output_dir=str(args.out / "snapshots"), every=args.snapshot_every)

    channels_first = [raw, boundaries, gt_mask]
    pipeline = (
        source
        + gp.Normalize(raw)
        + gp.RandomLocation()
        + gp.ElasticAugment(control_point_spacing=[4, 40, 40], jitter_sigma=[0, 2, 2],
                            rotation_interval=[0, math.pi / 2.0])
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
        + AddBoundaries(gt, boundaries)
        + gp.Unsqueeze(channels_first)  # channel axis: (1, z, y, x)
        + gp.Unsqueeze(channels_first)  # batch axis: (1, 1, z, y, x), torch's layout
        + gp.PreCache(cache_size=2 * args.num_workers, num_workers=args.num_workers)
        + train
        + snapshot
    )

    voxel_size = source_voxel_size(source, raw)
    request = gp.BatchRequest()
    request.add(raw, gp.Coordinate(args.raw_shape) * voxel_size)
    for key in (gt, gt_mask, boundaries, prediction):
        request.add(key, gp.Coordinate(output_shape) * voxel_size)

    client = None
    if args.client:
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1)
        client = distributed.Client(cluster)
        print(f"dask dashboard: {client.dashboard_link}", flush=True)

    start = time.perf_counter()
    with gp.build(pipeline, client=client, seed=args.seed) as p:
        first = train.iteration
        bar = tqdm(range(first, args.iterations), desc="training", unit="batch")
        for _ in bar:
            batch = p.request_batch(request)
            rate = (batch.iteration - first) / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{batch.loss:.4f}", batches_per_s=f"{rate:.2f}")
    if client is not None:
        client.close()
        cluster.close()
    print(f"done: {args.iterations} iterations in {time.perf_counter() - start:.0f} s")
    print(f"checkpoints: {args.out}/model_checkpoint_*   TensorBoard: {args.out / 'log'}")
    print(f"snapshots (open with napari or neuroglancer): {args.out / 'snapshots'}")


if __name__ == "__main__":
    main()
