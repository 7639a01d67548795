"""Watch daskgp work on the dask dashboard: a LocalCluster computes the seed pipeline's batches
ahead of the consumer with PreCache, and the task stream shows each node by name
(zarr-source-…, elastic-augment-…; Normalize and IntensityAugment run inside the warp's tasks).

    python examples/dashboard.py                 # then open the printed dashboard link
    python examples/dashboard.py --batches 500 --workers 4 --linger 600

Before computing, it checks that the dashboard serves its bokeh pages (the status page with
the task stream), not distributed's "Dask needs bokeh" placeholder. In Jupyter, see
``examples/first_steps.ipynb``: ``client`` renders with its dashboard link.
"""

from __future__ import annotations

import argparse
import math
import re
import time
import urllib.request
from pathlib import Path

import distributed
from tqdm import tqdm

import daskgp as gp
from daskgp.synthetic import make_em_like_dataset


def _get(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        if response.status != 200:
            raise RuntimeError(f"dashboard: GET {url} answered {response.status}")
        return response.read().decode("utf-8", errors="replace")


def check_dashboard(link: str, timeout: float = 10.0) -> dict[str, str]:
    """GET the dashboard's pages at ``link`` (``client.dashboard_link``) and raise
    ``RuntimeError`` unless they are bokeh documents: ``/status`` with its task stream,
    ``/individual-task-stream``, and the bokeh library they load. Returns ``{url: title}``.

    Without bokeh, distributed answers every page with "Dask needs bokeh>=3.1.0 for the
    dashboard"; that page, or any page without bokeh's scripts, fails this check.

    Example:
        >>> check_dashboard(client.dashboard_link)  # doctest: +SKIP
        {'http://127.0.0.1:8787/status': 'Dask Diagnostic UI', ...}
    """
    base = link.rsplit("/status", 1)[0].rstrip("/")
    titles = {}
    for page, needed in (("status", ("Task Stream",)), ("individual-task-stream", ())):
        url = f"{base}/{page}"
        html = _get(url, timeout)
        if "needs bokeh" in html:
            raise RuntimeError(f"dashboard: {url} is distributed's placeholder: {html[:200]!r}")
        scripts = re.findall(r'<script[^>]+src="([^"]*bokeh[^"]*\.js[^"]*)"', html)
        missing = [text for text in needed if text not in html]
        if not scripts or "data-root-id" not in html or missing:
            raise RuntimeError(
                f"dashboard: {url} is not a bokeh document (bokeh scripts: {scripts[:1]}, "
                f"missing {missing}): {html[:200]!r}"
            )
        title = re.search(r"<title>(.*?)</title>", html)
        titles[url] = title.group(1) if title else ""
    library = _get(f"{base}/{scripts[0].lstrip('/')}", timeout)
    if "Bokeh" not in library or len(library) < 100_000:
        raise RuntimeError(f"dashboard: {scripts[0]} is not the bokeh library")
    return titles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/dashboard_sample.zarr"))
    parser.add_argument("--shape", type=int, nargs=3, default=(100, 500, 500),
                        help="shape of the synthetic dataset, if it is created")
    parser.add_argument("--raw-shape", type=int, nargs=3, default=(84, 268, 268))
    parser.add_argument("--gt-shape", type=int, nargs=3, default=(56, 56, 56))
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--num-workers", type=int, default=4, help="PreCache num_workers")
    parser.add_argument("--dashboard-address", default=":8787",
                        help="host:port of the dashboard (':0' for any free port)")
    parser.add_argument("--linger", type=float, default=0.0,
                        help="seconds to keep the cluster (and dashboard) up at the end")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"creating a synthetic EM-like dataset in {args.data} ...", flush=True)
        make_em_like_dataset(args.data, shape=tuple(args.shape))

    raw, gt, mask = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")
    source = gp.ZarrSource(str(args.data), {raw: "volumes/raw", gt: "volumes/labels/neuron_ids",
                                            mask: "volumes/labels/mask"})
    pipeline = (source + gp.Normalize(raw) + gp.RandomLocation()
                + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                + gp.SimpleAugment(transpose_only=[1, 2])
                + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1)
                + gp.PreCache(cache_size=2 * args.num_workers, num_workers=args.num_workers))
    request = gp.BatchRequest()
    request.add(raw, tuple(args.raw_shape))
    request.add(gt, tuple(args.gt_shape))
    request.add(mask, tuple(args.gt_shape))

    with distributed.LocalCluster(
            n_workers=args.workers, threads_per_worker=1,
            dashboard_address=args.dashboard_address) as cluster, \
            distributed.Client(cluster) as client:
        print(f"dask dashboard: {client.dashboard_link}", flush=True)
        pages = check_dashboard(client.dashboard_link)
        print("dashboard serves bokeh: " + ", ".join(f"{t!r} at {u}" for u, t in pages.items()),
              flush=True)
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
