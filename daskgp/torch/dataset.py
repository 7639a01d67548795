"""``dataset``: a ``torch.utils.data.IterableDataset`` fed by a daskgp pipeline, for users of
their own training loops (plain loops, Lightning); ``DataLoader`` workers split the batches."""

from __future__ import annotations

from ..request import BatchRequest


def dataset(pipeline, request: BatchRequest, seed: int | None = None, scheduler=None,
            client=None, cache_size: int = 8, num_workers: int = 2,
            num_batches: int | None = None):
    """An ``IterableDataset`` of the batches of ``pipeline`` for ``request``.

    Each element is ``{key.identifier: tensor}`` (CPU tensors in the batch layout). Element *i*
    is exactly batch *i* of ``gp.build(pipeline, seed=seed)`` for the same request. Batches are
    computed ahead, up to ``cache_size`` at once and ``num_workers`` at a time, on the chosen
    scheduler (as a ``PreCache`` would; do not put one in ``pipeline``).

    With ``DataLoader(data, num_workers=k)`` each of the ``k`` loader processes builds its own
    copy of the pipeline and computes the batches *i* with ``i % k == worker id``, so together
    they yield each batch exactly once: the same set of batches as ``num_workers=0``. With
    ``batch_size=None`` or 1 the order is also the same (the loader takes from its workers in
    turn); with ``batch_size=b``, each loader batch stacks ``b`` batches of one worker (batches
    ``w, w + k, w + 2k, ...``), and each worker's last loader batch may be short. Each loader
    process runs its own ``cache_size`` and ``num_workers``: divide them by ``k`` to keep the
    total. Loader workers compute on local schedulers; to compute on a ``distributed`` cluster,
    pass ``client=`` and keep ``DataLoader(num_workers=0)`` (the cluster is the parallelism; a
    client does not survive a fork or a pickle).

    Args:
        pipeline (Pipeline or BatchProvider): the pipeline (without ``Train`` or ``PreCache``).
        request (BatchRequest): the request of every batch (arrays only, no seed of its own).
        seed (int, optional): base seed of the batch sequence. None: drawn from torch's random
            generator at each ``iter`` (so ``torch.manual_seed`` repeats a run, and every epoch
            differs); all loader workers of one epoch share it.
        scheduler, client: as for ``gp.build``, in each process that iterates.
        cache_size (int), num_workers (int): batches computed ahead, and at once.
        num_batches (int, optional): end after this many batches in total (default: endless);
            it is then also ``len()`` of the dataset.

    Example:
        >>> from torch.utils.data import DataLoader   # doctest: +SKIP
        >>> data = dataset(pipeline, request, seed=1, num_batches=1000)   # doctest: +SKIP
        >>> for batch in DataLoader(data, batch_size=4, num_workers=2):   # doctest: +SKIP
        ...     loss = criterion(model(batch["RAW"][:, None]), batch["GT"][:, None])
    """
    from ._iterable import PipelineDataset

    return PipelineDataset(pipeline, request, seed=seed, scheduler=scheduler, client=client,
                           cache_size=cache_size, num_workers=num_workers,
                           num_batches=num_batches)
