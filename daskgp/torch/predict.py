"""``Predict``: runs a torch model (eval mode, no gradients) on each batch of a pipeline."""

from __future__ import annotations

import logging

from ..batch import Batch
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler
from ..tensorflow._tensors import (
    input_dependencies,
    materialize,
    output_array,
)
from ._tensors import OutputCollector, output_specs, resolve_device, split_arguments, to_tensor
from .checkpoints import load_checkpoint, model_state

logger = logging.getLogger(__name__)


class Predict(BatchFilter):
    """Run ``model`` on the arrays named by ``inputs``; put its outputs in the batch.

    gunpowder's ``gp.torch.Predict``, argument for argument. A materialization boundary: the
    inputs are computed here and given to the model in their batch layout as tensors on
    ``device``; the model runs in eval mode under ``torch.no_grad()``, always in this process
    (daskgp never forks, so a CUDA model needs no child process).

    Args:
        model (torch.nn.Module): the model (set to eval mode here).
        inputs (dict): ``{forward() argument position (int) or name (str): ArrayKey}``.
        outputs (dict): ``{output: ArrayKey}``: a position in what ``forward`` returns, the
            attribute name of a submodule (its output, by a forward hook), or a key of a dict
            ``forward`` returns; put in the batch with the requested ROIs.
        array_specs (dict, optional): ``{ArrayKey: ArraySpec}`` for the outputs; unset fields
            default to the inputs' common voxel size and ``interpolatable=False``.
        checkpoint (str, optional): a file written by ``Train`` (``model_state_dict``) or a bare
            ``state_dict``, loaded into ``model`` at setup.
        device (str): ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...; CUDA asked for and not available
            is an error that says to pass ``device="cpu"``.
        spawn_subprocess (bool): accepted for gunpowder's signature; prediction always runs in
            this process (see above).

    Example:
        >>> predict = Predict(model, inputs={0: raw}, outputs={0: prediction},  # doctest: +SKIP
        ...                   checkpoint="runs/model_checkpoint_2000", device="cpu")
    """

    lazy = True
    accepts_numpy = True

    def __init__(self, model, inputs: dict, outputs: dict, array_specs: dict | None = None,
                 checkpoint: str | None = None, device: str = "cuda",
                 spawn_subprocess: bool = False) -> None:
        self.model = model
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.array_specs = dict(array_specs or {})
        self.checkpoint = None if checkpoint is None else str(checkpoint)
        self.device = device
        self.spawn_subprocess = spawn_subprocess
        self._collector: OutputCollector | None = None

    def setup(self) -> None:
        if self.spawn_subprocess:
            logger.info("%s: spawn_subprocess=True is not needed (daskgp never forks); the "
                        "model runs in this process", self.name())
        for key in self.inputs.values():
            self.upstream_spec(key, "predict from")
        specs = output_specs(self.name(), self.inputs, self.outputs.values(), self.spec,
                             self.array_specs)
        for key, spec in specs.items():
            self.provides(key, spec)
        self._device = resolve_device(self.name(), self.device)
        self.model.to(self._device)
        if self.checkpoint is not None:
            checkpoint = load_checkpoint(self.name(), self.checkpoint, self._device)
            self.model.load_state_dict(model_state(self.name(), self.checkpoint, checkpoint))
        self.model.eval()
        self._collector = OutputCollector(self.name(), self.model, self.outputs)

    def prepare(self, request: BatchRequest) -> BatchRequest:
        return input_dependencies(self.name(), self.inputs.values(), request)

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        import torch

        keys = list(dict.fromkeys(self.inputs.values()))
        data = materialize(batch, keys, current_scheduler())
        tensors = {key: to_tensor(values, self._device) for key, values in data.items()}
        args, kwargs = split_arguments(self.name(), self.inputs, tensors, "input")
        self._collector.recorded.clear()
        with torch.no_grad():
            outputs = self._collector.collect(self.model(*args, **kwargs))
        result = Batch()
        for name, key in self.outputs.items():
            if key in request:
                values = self._collector.pick(outputs, name, key).detach().cpu().numpy()
                result[key] = output_array(self.name(), key, values, request, self.spec[key])
        for key in keys:
            if key in request:  # computed once: keep the numpy data
                result[key] = batch[key].__class__(data[key], batch[key].spec, batch[key].attrs)
        return result

    def teardown(self) -> None:
        if self._collector is not None:
            self._collector.remove()
        self._collector = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_collector"] = None
        return state
