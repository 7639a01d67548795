"""Watch daskgp work on the dask dashboard: a LocalCluster computes the seed pipeline's batches
ahead of the consumer with PreCache, and the task stream shows each node by name
(zarr-source-…, elastic-augment-…, intensity-augment-…).

    python examples/dashboard.py                 # then open the printed dashboard link
    python examples/dashboard.py --batches 500 --workers 4

In Jupyter, run the same code in a notebook: ``client`` renders with its dashboard link.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import distributed
from tqdm import tqdm

import daskgp as gp
from daskgp.synthetic import make_em_like_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/dashboard_sample.zarr"))
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--num-workers", type=int, default=4, help="PreCache num_workers")
    parser.add_argument("--linger", type=float, default=0.0,
                        help="seconds to keep the cluster (and dashboard) up at the end")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"creating a synthetic EM-like dataset in {args.data} ...", flush=True)
        make_em_like_dataset(args.data, shape=(100, 500, 500))

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    source = gp.ZarrSource(str(args.data), {raw: "volumes/raw", gt: "volumes/labels/neuron_ids",
                                            mask: "volumes/labels/mask"})
    pipeline = (source + gp.Normalize(raw) + gp.RandomLocation()
                + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                + gp.SimpleAugment(transpose_only=[1, 2])
                + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
                + gp.PreCache(cache_size=2 * args.num_workers, num_workers=args.num_workers))
    request = gp.BatchRequest()
    request.add(raw, (84, 268, 268))
    request.add(gt, (56, 56, 56))
    request.add(mask, (56, 56, 56))

    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1) as cluster, \
            distributed.Client(cluster) as client:
        print(f"dask dashboard: {client.dashboard_link}", flush=True)
        start = time.perf_counter()
        with gp.build(pipeline, client=client, seed=0) as p:
            for _ in tqdm(range(args.batches), desc="batches", unit="batch"):
                batch = p.request_batch(request)
        seconds = time.perf_counter() - start
        print(f"{args.batches} batches in {seconds:.1f} s ({args.batches / seconds:.2f} "
              f"batches/s); last raw batch mean {batch[raw].data.mean():.3f}")
        prefixes = sorted(client.run_on_scheduler(
            lambda dask_scheduler: [str(k) for k in dask_scheduler.task_prefixes]))
        print(f"task prefixes the dashboard showed: {', '.join(prefixes)}")
        time.sleep(args.linger)


if __name__ == "__main__":
    main()
