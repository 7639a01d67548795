"""Shared pieces of the benchmarks: the synthetic dataset, the seed pipeline, RSS sampling."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import daskgp as gp
from daskgp.synthetic import make_em_like_dataset

DATA_DIR = Path(os.environ.get("DASKGP_BENCH_DATA", Path(__file__).parent / "data"))
RAW_SHAPE, GT_SHAPE = (84, 268, 268), (56, 56, 56)


def ensure_dataset(name: str, shape, chunks=(64, 128, 128), zarr_format: int = 2) -> Path:
    """The synthetic EM-like zarr dataset ``name``, created once and reused (zarr format 2 by
    default, so gunpowder's zarr 2 reads it too)."""
    path = DATA_DIR / f"{name}.zarr"
    marker = path / ".complete"
    if not marker.exists():
        print(f"creating {path} {shape} ...", flush=True)
        make_em_like_dataset(path, shape=shape, chunks=chunks, zarr_format=zarr_format)
        marker.write_text("ok")
    return path


def keys():
    """RAW, GT and MASK keys."""
    return gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")


def seed_pipeline(path: Path, after_random_location=None, before_random_location=None):
    """The seed's augmentation pipeline (without Train) and its request; a node given as
    ``after_random_location`` or ``before_random_location`` (e.g. one that records requests)
    is inserted there."""
    raw, gt, mask = keys()
    source = gp.ZarrSource(str(path), {raw: "volumes/raw", gt: "volumes/labels/neuron_ids",
                                       mask: "volumes/labels/mask"})
    pipeline = source + gp.Normalize(raw)
    if before_random_location is not None:
        pipeline = pipeline + before_random_location
    pipeline = pipeline + gp.RandomLocation()
    if after_random_location is not None:
        pipeline = pipeline + after_random_location
    pipeline = (pipeline
                + gp.ElasticAugment([4, 40, 40], [0, 2, 2], [0, math.pi / 2.0])
                + gp.SimpleAugment(transpose_only=[1, 2])
                + gp.IntensityAugment(raw, 0.9, 1.1, -0.1, 0.1))
    request = gp.BatchRequest()
    request.add(raw, RAW_SHAPE)
    request.add(gt, GT_SHAPE)
    request.add(mask, GT_SHAPE)
    return pipeline, request


def rss_bytes(include_children: bool = True) -> int:
    """Resident memory of this process (and its children: cluster workers)."""
    import psutil

    process = psutil.Process()
    total = process.memory_info().rss
    if include_children:
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                pass
    return total


class PeakRss:
    """Samples ``rss_bytes()`` every ``interval`` seconds in a thread; ``.peak`` after exit."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRss:
        self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())
