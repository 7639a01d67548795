"""``PipelineDataset``, the ``IterableDataset`` behind ``daskgp.torch.dataset`` (kept apart so
that importing ``daskgp.torch`` does not import torch)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..batch import Batch
from ..pipeline import Pipeline, build
from ..request import BatchRequest
from ..scheduling import BatchPrefetcher
from ._tensors import to_tensor


class PipelineDataset(IterableDataset):
    """Batches of a daskgp pipeline as ``{key.identifier: tensor}``; see ``dataset``."""

    def __init__(self, pipeline, request: BatchRequest, seed: int | None, scheduler, client,
                 cache_size: int, num_workers: int, num_batches: int | None) -> None:
        if request.random_seed is not None:
            raise ValueError("dataset(): the request must not carry a random_seed; pass seed=")
        if request.graph_specs:
            raise ValueError(
                f"dataset(): the request holds graphs {list(request.graph_specs)}; a torch "
                "dataset gives tensors of arrays only (rasterize graphs with RasterizeGraph)"
            )
        if not request.array_specs:
            raise ValueError("dataset(): the request holds no arrays")
        if num_batches is not None and num_batches < 0:
            raise ValueError(f"dataset(): num_batches must be >= 0, got {num_batches}")
        if cache_size < 1 or num_workers < 1:
            raise ValueError(
                f"dataset(): cache_size and num_workers must be >= 1, got {cache_size} and "
                f"{num_workers}"
            )
        self.pipeline = Pipeline.to_pipeline(pipeline)
        self.request = request.copy()
        self.seed = seed
        self.scheduler = scheduler
        self.client = client
        self.cache_size = cache_size
        self.num_workers = num_workers
        self.num_batches = num_batches

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("this dataset is endless: pass num_batches= to give it a length")
        return self.num_batches

    def share(self) -> tuple[int, int, int | None]:
        """``(first, step, count)``: this process yields batches ``first, first + step, ...``,
        ``count`` of them (None: endless); in loader worker ``w`` of ``k``, ``(w, k, ...)``."""
        info = get_worker_info()
        first, step = (0, 1) if info is None else (info.id, info.num_workers)
        if self.num_batches is None:
            return first, step, None
        return first, step, len(range(first, self.num_batches, step))

    def base_seed(self) -> int:
        """``seed``, or one drawn for this epoch: the loader's base seed in its workers (shared
        by all of them), else a draw from torch's default generator."""
        if self.seed is not None:
            return int(self.seed)
        info = get_worker_info()
        if info is not None:
            return (info.seed - info.id) % 2**32
        return int(torch.empty((), dtype=torch.int64).random_().item()) % 2**32

    def __iter__(self) -> Iterator[dict]:
        seed = self.base_seed()
        keys = list(self.request.array_specs)
        first, step, count = self.share()
        with build(self.pipeline, scheduler=self.scheduler, client=self.client,
                   seed=seed) as p:

            def plan(position: int) -> Batch:
                if count is not None and position >= count:
                    return Batch()  # read ahead past the end: nothing to compute
                index = first + position * step
                return p.request_lazy_batch(self.request.in_sequence(seed, index))

            prefetcher = BatchPrefetcher(plan, p.scheduler, self.cache_size, self.num_workers)
            try:
                for position in itertools.count() if count is None else range(count):
                    batch = prefetcher.get(position)
                    yield {key.identifier: to_tensor(batch[key].data, "cpu") for key in keys}
            finally:
                prefetcher.close()
