"""gunpowder's "first steps" pipeline with ``import daskgp as gp``, trained for real.

Creates a synthetic EM-like dataset (or uses ``--data``: a zarr or HDF5 file with the seed's
dataset names), builds the seed pipeline — ZarrSource, Normalize, RandomLocation,
ElasticAugment, SimpleAugment, IntensityAugment, PreCache, Train — and trains a small 3D U-Net
(Keras) to predict neuron boundaries from raw, with checkpoints and periodic snapshots.

    python examples/first_steps.py                      # ~2 minutes on 2 cores
    python examples/first_steps.py --client             # on a LocalCluster, with its dashboard
    python examples/first_steps.py --iterations 2000 --raw-shape 36 196 196
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

import daskgp as gp

RAW_DATASET = "volumes/raw"
GT_DATASET = "volumes/labels/neuron_ids"
MASK_DATASET = "volumes/labels/mask"


class AddBoundaries(gp.BatchFilter):
    """A gunpowder-style numpy node (unchanged gunpowder code runs in a dask task): marks the
    voxels whose neuron id differs from a neighbour's in y or x."""

    def __init__(self, labels: gp.ArrayKey, boundaries: gp.ArrayKey) -> None:
        self.labels = labels
        self.boundaries = boundaries

    def setup(self) -> None:
        spec = self.spec[self.labels].copy()
        spec.dtype = np.dtype(np.float32)
        spec.interpolatable = True
        self.provides(self.boundaries, spec)

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[self.labels] = request[self.boundaries].copy()
        return deps

    def process(self, batch, request):
        labels = batch[self.labels].data
        boundaries = np.zeros(labels.shape, np.float32)
        for axis in (1, 2):
            change = np.diff(labels, axis=axis) != 0
            low = [slice(None)] * 3
            high = [slice(None)] * 3
            low[axis], high[axis] = slice(0, -1), slice(1, None)
            boundaries[tuple(low)] = np.maximum(boundaries[tuple(low)], change)
            boundaries[tuple(high)] = np.maximum(boundaries[tuple(high)], change)
        spec = self.spec[self.boundaries].copy()
        spec.roi = request[self.boundaries].roi
        out = gp.Batch()
        out[self.boundaries] = gp.Array(boundaries, spec)
        return out


def unet(raw_shape, features: int = 8):
    """A small 3D U-Net with valid convolutions, downsampling (1, 2, 2): channels last."""
    import keras

    def block(x, n):
        for _ in range(2):
            x = keras.layers.Conv3D(n, 3, activation="relu", padding="valid")(x)
        return x

    inputs = keras.Input(shape=(*raw_shape, 1))
    down = block(inputs, features)
    bottom = block(keras.layers.MaxPooling3D((1, 2, 2))(down), features * 2)
    up = keras.layers.UpSampling3D((1, 2, 2))(bottom)
    crop = [((d - u) // 2, (d - u) - (d - u) // 2)
            for d, u in zip(down.shape[1:4], up.shape[1:4], strict=True)]
    skip = keras.layers.Cropping3D(crop)(down)
    x = block(keras.layers.Concatenate()([skip, up]), features)
    outputs = keras.layers.Conv3D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="unet")


def masked_mse(target, prediction, mask):
    """Mean squared error over the voxels where the mask is set."""
    import tensorflow as tf

    mask = tf.cast(mask, prediction.dtype)
    return tf.reduce_sum(mask * tf.square(prediction - target)) / (tf.reduce_sum(mask) + 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="zarr or HDF5 file with the seed's datasets (default: synthetic)")
    parser.add_argument("--out", type=Path, default=Path("runs/first_steps"))
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--raw-shape", type=int, nargs=3, default=(20, 64, 64),
                        help="network input in voxels; the output size follows from the U-Net")
    parser.add_argument("--snapshot-every", type=int, default=250)
    parser.add_argument("--save-every", type=int, default=250)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--client", action="store_true",
                        help="compute on a dask.distributed LocalCluster and print its dashboard")
    args = parser.parse_args()

    import keras
    from tqdm import tqdm

    data = args.data
    if data is None:
        from daskgp.synthetic import make_em_like_dataset

        data = Path("data/first_steps_sample.zarr")
        if not data.exists():
            print(f"creating a synthetic EM-like dataset in {data} ...", flush=True)
            make_em_like_dataset(data, shape=(100, 400, 400), seed=args.seed)

    raw, gt, gt_mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    boundaries, prediction = gp.ArrayKey("BOUNDARIES"), gp.ArrayKey("PREDICTION")
    source_class = gp.Hdf5Source if str(data).endswith((".hdf", ".h5", ".hdf5")) else gp.ZarrSource
    source = source_class(str(data), {raw: RAW_DATASET, gt: GT_DATASET, gt_mask: MASK_DATASET})

    keras.utils.set_random_seed(args.seed)
    model = unet(tuple(args.raw_shape))
    output_shape = tuple(model.output_shape[1:4])
    args.out.mkdir(parents=True, exist_ok=True)
    train = gp.tensorflow.Train(
        model, loss=masked_mse, optimizer=keras.optimizers.Adam(1e-3),
        inputs={0: raw}, outputs={0: prediction},
        loss_inputs={0: boundaries, 1: prediction, 2: gt_mask},
        checkpoint_basename=str(args.out / "model"), save_every=args.save_every,
        log_dir=str(args.out / "log"))
    snapshot = gp.Snapshot(
        {raw: "volumes/raw", gt: "volumes/labels/neuron_ids", boundaries: "volumes/boundaries",
         prediction: "volumes/prediction"},
        output_dir=str(args.out / "snapshots"), every=args.snapshot_every)

    pipeline = (
        source
        + gp.Normalize(raw)
        + gp.RandomLocation()
        + gp.ElasticAugment(control_point_spacing=[4, 40, 40], jitter_sigma=[0, 2, 2],
                            rotation_interval=[0, math.pi / 2.0])
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
        + AddBoundaries(gt, boundaries)
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
        first = train.iteration  # resumed from the newest checkpoint in --out, if any
        if first >= args.iterations:
            print(f"already trained to {first} iterations; nothing to do (checkpoints in "
                  f"{args.out}; pass a larger --iterations to train on)")
        elif first:
            print(f"resuming at iteration {first} from {train.latest_checkpoint()}")
        bar = tqdm(range(first, args.iterations), desc="training", unit="batch",
                   disable=first >= args.iterations)
        for _ in bar:
            batch = p.request_batch(request)
            rate = (batch.iteration - first) / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{batch.loss:.4f}", batches_per_s=f"{rate:.2f}")
    if client is not None:
        client.close()
        cluster.close()
    if first < args.iterations:
        print(f"done: {args.iterations - first} iterations (to {args.iterations}) in "
              f"{time.perf_counter() - start:.0f} s")
    print(f"checkpoints: {args.out}/model_checkpoint_*   TensorBoard: {args.out / 'log'}")
    print(f"snapshots (open with napari or neuroglancer): {args.out / 'snapshots'}")


def source_voxel_size(source, key) -> gp.Coordinate:
    """The voxel size the source reports for ``key`` (read from the file's metadata)."""
    with gp.build(source, scheduler="sync"):
        return source.spec[key].voxel_size


if __name__ == "__main__":
    main()
