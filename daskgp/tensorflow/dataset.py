"""``dataset``: a ``tf.data.Dataset`` fed by a daskgp pipeline, for ``model.fit`` users."""

from __future__ import annotations

import itertools

from ..nodes.pre_cache import PreCache
from ..pipeline import Pipeline, build
from ..request import BatchRequest


def dataset(pipeline, request: BatchRequest, seed: int | None = None, scheduler=None,
            client=None, cache_size: int = 8, num_workers: int = 2,
            num_batches: int | None = None):
    """A ``tf.data.Dataset`` of the batches of ``pipeline`` for ``request``.

    Each element is ``{key.identifier: tensor}``. Batches are computed ahead by a ``PreCache``
    (``cache_size``, ``num_workers``) on the chosen scheduler, and element *i* is exactly
    batch *i* of ``gp.build(pipeline, seed=seed)`` for the same request. The
    ``output_signature`` (shapes, dtypes) comes from one lazy batch: nothing is computed for it.

    Args:
        pipeline (Pipeline or BatchProvider): the pipeline (without ``Train``).
        request (BatchRequest): the request of every batch (without a seed of its own).
        seed (int, optional): base seed of the batch sequence (default: drawn per iteration).
        scheduler, client: as for ``gp.build``.
        cache_size (int), num_workers (int): of the ``PreCache``.
        num_batches (int, optional): end after this many batches (default: endless).

    Example:
        >>> data = dataset(pipeline, request, seed=1).map(   # doctest: +SKIP
        ...     lambda d: (d["RAW"][..., None], d["GT"][..., None])).batch(4)
        >>> model.fit(data, steps_per_epoch=100)   # doctest: +SKIP
    """
    import tensorflow as tf

    if request.random_seed is not None:
        raise ValueError("dataset(): the request must not carry a random_seed; pass seed=")
    keys = list(request.array_specs)
    with build(pipeline, scheduler="sync", seed=0) as probe_pipeline:
        probe = probe_pipeline.request_lazy_batch(request)
    signature = {
        key.identifier: tf.TensorSpec(shape=probe[key].data.shape,
                                      dtype=tf.as_dtype(probe[key].data.dtype))
        for key in keys
    }

    def batches():
        cached = Pipeline.to_pipeline(pipeline) + PreCache(cache_size, num_workers)
        with build(cached, scheduler=scheduler, client=client, seed=seed) as p:
            for _ in itertools.count() if num_batches is None else range(num_batches):
                batch = p.request_batch(request)
                yield {key.identifier: batch[key].data for key in keys}

    return tf.data.Dataset.from_generator(batches, output_signature=signature)
