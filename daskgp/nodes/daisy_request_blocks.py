"""``DaisyRequestBlocks``: requests the blocks a daisy scheduler hands out, as gunpowder's."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import dask

from ..batch import Batch
from ..errors import BatchRequestError, PipelineSetupError
from ..geometry import Roi
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler, local_get

logger = logging.getLogger(__name__)

ROI_TYPES = ("read_roi", "write_roi")


class DaisyRequestBlocks(BatchFilter):
    """Request batches like ``reference`` from upstream, with their ROIs set to the blocks
    that ``daisy`` distributes, until daisy has no block left; as gunpowder's.

    Run inside a daisy worker (the ``process_function`` of a ``daisy.Task``, which sets
    ``DAISY_CONTEXT``): each worker thread opens a ``daisy.Client()``, acquires blocks, plans
    the upstream batch of each (the reference with every key's ROI set to the block's
    ``read_roi`` or ``write_roi``, per ``roi_map``) and computes it, with its writes
    (``ZarrWrite``, ``Hdf5Write``: its ``side_effects``), on the pipeline's scheduler before
    the block is released to daisy as done. The request to this node must be empty, since no
    batch is assembled; the returned batch is empty.

    The same job without daisy is ``daskgp predict`` (plan once, a sliding window of tiles,
    completion and checksums recorded in the output, output locks): daisy's ``total_roi`` is
    ``--roi`` (of the output), ``read_roi``/``write_roi`` are the reference's input and
    output ROIs, and ``check_function`` is the output's ``_completed_tiles`` record.

    Args:
        reference (BatchRequest): the request shifted to each block.
        roi_map (dict, ArrayKey -> str): ``"read_roi"`` or ``"write_roi"`` for every key of
            the reference.
        num_workers (int): threads that acquire and process blocks at once, each with its
            own ``daisy.Client`` (gunpowder starts processes).
        block_done_callback (callable, optional): ``block_done_callback(block, start,
            duration)`` after each block (seconds, as ``time.time()``).

    Example:
        >>> raw, pred = ArrayKey("RAW"), ArrayKey("PRED")
        >>> reference = gp.BatchRequest()
        >>> reference.add(raw, (40, 40, 40))
        >>> reference.add(pred, (20, 20, 20))
        >>> blocks = gp.DaisyRequestBlocks(reference, {raw: "read_roi", pred: "write_roi"})
        >>> # pipeline = source + model + gp.ZarrWrite({pred: "pred"}) + blocks
        >>> # in a daisy worker: with gp.build(pipeline): pipeline.request_batch(gp.BatchRequest())
    """

    lazy = True

    def __init__(self, reference: BatchRequest, roi_map: Mapping, num_workers: int = 1,
                 block_done_callback: Callable | None = None) -> None:
        if not isinstance(reference, BatchRequest):
            raise PipelineSetupError(
                f"DaisyRequestBlocks: reference must be a BatchRequest, got {reference!r}")
        for key in reference.keys():
            if roi_map.get(key) not in ROI_TYPES:
                raise PipelineSetupError(
                    f"DaisyRequestBlocks: roi_map does not map {key} to either 'read_roi' or "
                    f"'write_roi' (got {roi_map.get(key)!r})"
                )
        if num_workers < 1:
            raise PipelineSetupError(
                f"DaisyRequestBlocks: num_workers must be >= 1, got {num_workers}")
        self.reference = reference.copy()
        self.roi_map = dict(roi_map)
        self.num_workers = num_workers
        self.block_done_callback = block_done_callback

    def provide(self, request: BatchRequest) -> Batch:
        if len(request) != 0:
            raise BatchRequestError(
                f"{self.name()}: requests made to DaisyRequestBlocks have to be empty, got "
                f"{request.keys()}"
            )
        scheduler = current_scheduler()
        if self.num_workers == 1:
            self._process_blocks(scheduler)
            return Batch()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                self._process_blocks(scheduler)
            except BaseException as error:  # re-raised in the caller below
                errors.append(error)

        threads = [threading.Thread(target=work, name=f"daskgp-daisy-{i}")
                   for i in range(self.num_workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return Batch()

    def _process_blocks(self, scheduler) -> None:
        import daisy

        client = daisy.Client()
        while True:
            with client.acquire_block() as block:
                if block is None:
                    return
                logger.info("%s: processing block %s", self.name(), block)
                start = time.time()
                batch = self.get_upstream_provider().request_batch(self._block_request(block))
                if batch.side_effects:
                    dask.compute(*batch.side_effects, scheduler=local_get(scheduler))
                if self.block_done_callback is not None:
                    self.block_done_callback(block, start, time.time() - start)

    def _block_request(self, block) -> BatchRequest:
        chunk_request = self.reference.copy()
        for key in self.reference.keys():
            roi = getattr(block, self.roi_map[key])
            chunk_request[key].roi = Roi(tuple(roi.offset), tuple(roi.shape))
        return chunk_request
