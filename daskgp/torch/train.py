"""``Train``: one torch optimizer step per batch, with gunpowder's signature, checkpoints and
TensorBoard logs."""

from __future__ import annotations

import logging

from ..batch import Batch
from ..errors import PipelineSetupError
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler
from ..tensorflow._tensors import (
    batch_loss_keys,
    input_dependencies,
    materialize,
    output_array,
)
from ._tensors import OutputCollector, output_specs, resolve_device, split_arguments, to_tensor
from .checkpoints import latest_checkpoint, load_checkpoint, model_state, save_checkpoint

logger = logging.getLogger(__name__)


class Train(BatchFilter):
    """Train a ``torch.nn.Module``: one forward, backward and optimizer step per batch.

    gunpowder's ``gp.torch.Train``, argument for argument. A materialization boundary: the
    arrays the step needs are computed here (one ``dask.compute``, or already numpy behind a
    ``PreCache``) and given to the model in their batch layout, as tensors on ``device`` (no
    axis is moved or added: a (z, y, x) array is a (z, y, x) tensor; add batch and channel axes
    with ``gp.Unsqueeze``/``gp.Stack`` upstream or in ``forward``).

    Args:
        model (torch.nn.Module): the model to train (in training mode).
        loss (callable): the loss, e.g. ``torch.nn.MSELoss()``, called with ``loss_inputs``.
        optimizer (torch.optim.Optimizer): the optimizer of ``model``'s parameters.
        inputs (dict): ``{forward() argument position (int) or name (str): ArrayKey}``.
        outputs (dict): ``{output: ArrayKey}``; an int is a position in the tuple ``forward``
            returns (0 for a single tensor), a str the attribute name of a submodule whose
            output is taken (a forward hook, as in gunpowder) or a key of a dict ``forward``
            returns. Each requested output is put in the batch with the requested ROI.
        loss_inputs (dict): ``{loss argument position or name: ArrayKey}``; a key of
            ``outputs`` stands for that model output, any other key for a batch array.
        gradients (dict, optional): ``{output (as in outputs): ArrayKey}``: put the gradient of
            the loss with respect to that output in the batch.
        array_specs (dict, optional): ``{ArrayKey: ArraySpec}`` for outputs and gradients; unset
            fields default to the inputs' common voxel size and ``interpolatable=False``.
        checkpoint_basename (str): checkpoints are ``<basename>_checkpoint_<iteration>``
            (``torch.save`` of ``model_state_dict`` and ``optimizer_state_dict``, gunpowder's
            format); training resumes from the latest one and continues its iteration count.
        save_every (int): save a checkpoint every this many iterations.
        log_dir (str, optional): write the loss to TensorBoard (``torch.utils.tensorboard``).
        log_every (int): log every this many iterations.
        spawn_subprocess (bool): run the model in a spawned child process (model, loss and
            optimizer must pickle); the batch pipeline stays in this process.
        device (str): ``"cuda"``, ``"cuda:1"``, ``"cpu"``, ...; where CUDA is asked for and not
            available this is an error that says to pass ``device="cpu"`` (gunpowder silently
            falls back to the CPU).

    Example:
        >>> train = Train(model, loss=torch.nn.MSELoss(),   # doctest: +SKIP
        ...               optimizer=torch.optim.Adam(model.parameters(), lr=1e-4),
        ...               inputs={"raw": raw}, outputs={0: prediction},
        ...               loss_inputs={0: prediction, 1: target}, device="cpu")
    """

    lazy = True
    accepts_numpy = True

    def __init__(self, model, loss, optimizer, inputs: dict, outputs: dict, loss_inputs: dict,
                 gradients: dict | None = None, array_specs: dict | None = None,
                 checkpoint_basename: str = "model", save_every: int = 2000,
                 log_dir: str | None = None, log_every: int = 1, spawn_subprocess: bool = False,
                 device: str = "cuda") -> None:
        if not getattr(model, "training", True):
            logger.warning("Train: the model is in evaluation mode; consider model.train()")
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.loss_inputs = dict(loss_inputs)
        self.gradients = dict(gradients or {})
        self.array_specs = dict(array_specs or {})
        self.checkpoint_basename = str(checkpoint_basename)
        self.save_every = save_every
        self.log_dir = log_dir
        self.log_every = log_every
        self.spawn_subprocess = spawn_subprocess
        self.device = device
        self.iteration = 0
        self._step: TrainStep | None = None

    def setup(self) -> None:
        for key in [*self.inputs.values(), *self._batch_loss_keys()]:
            self.upstream_spec(key, "train on")
        specs = output_specs(self.name(), self.inputs,
                             [*self.outputs.values(), *self.gradients.values()], self.spec,
                             self.array_specs)
        for key, spec in specs.items():
            self.provides(key, spec)
        step = TrainStep(self.name(), self.model, self.loss, self.optimizer, self.inputs,
                         self.outputs, self.loss_inputs, self.gradients,
                         self.checkpoint_basename, self.save_every, self.log_dir,
                         self.log_every, self.device)
        if self.spawn_subprocess:
            from ._subprocess import SubprocessStep

            self._step = SubprocessStep(step)
        else:
            step.start()
            self._step = step
        self.iteration = self._step.iteration

    def prepare(self, request: BatchRequest) -> BatchRequest:
        return input_dependencies(
            self.name(), [*self.inputs.values(), *self._batch_loss_keys()], request)

    def _batch_loss_keys(self) -> list:
        return batch_loss_keys(self.loss_inputs, self.outputs)

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        needed = list(dict.fromkeys([*self.inputs.values(), *self._batch_loss_keys()]))
        data = materialize(batch, needed, current_scheduler())
        requested = [key for key in [*self.outputs.values(), *self.gradients.values()]
                     if key in request]
        loss, iteration, arrays = self._step.run(data, requested)
        self.iteration = iteration
        result = Batch()
        for key, values in arrays.items():
            result[key] = output_array(self.name(), key, values, request, self.spec[key])
        for key in needed:
            if key in request:
                result[key] = batch[key].__class__(data[key], batch[key].spec, batch[key].attrs)
        result.loss = loss
        result.iteration = iteration
        return result

    def teardown(self) -> None:
        if self._step is not None:
            self._step.stop()
        self._step = None

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_step"] = None
        return state


class TrainStep:
    """What ``Train`` runs per batch, in this process or a child: the model, loss, optimizer,
    output hooks, checkpoints and the TensorBoard writer. Internal."""

    def __init__(self, node: str, model, loss, optimizer, inputs: dict, outputs: dict,
                 loss_inputs: dict, gradients: dict, checkpoint_basename: str, save_every: int,
                 log_dir: str | None, log_every: int, device: str) -> None:
        self.node = node
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.inputs = inputs
        self.outputs = outputs
        self.loss_inputs = loss_inputs
        self.gradients = gradients
        self.checkpoint_basename = checkpoint_basename
        self.save_every = save_every
        self.log_dir = log_dir
        self.log_every = log_every
        self.device = device
        self.iteration = 0
        self._writer = None
        self._collector = None
        self._hooks: list = []

    def start(self) -> None:
        """Move model and loss to the device, resume from the latest checkpoint, open logs."""
        import torch

        device = resolve_device(self.node, self.device)
        self.model.to(device)
        if isinstance(self.loss, torch.nn.Module):
            self.loss.to(device)
        self._device = device
        path, iteration = latest_checkpoint(self.checkpoint_basename)
        if path is not None:
            logger.info("%s: resuming from %s (iteration %d)", self.node, path, iteration)
            checkpoint = load_checkpoint(self.node, path, device)
            self.model.load_state_dict(model_state(self.node, path, checkpoint))
            if "optimizer_state_dict" not in checkpoint:
                raise PipelineSetupError(
                    f"{self.node}: checkpoint {path!r} has no 'optimizer_state_dict'; "
                    "training cannot resume from it"
                )
            self.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
        self.iteration = iteration
        names = [*self.outputs, *self.gradients]
        self._collector = OutputCollector(self.node, self.model, names)
        if self.log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.log_dir)

    def run(self, data: dict, requested: list) -> tuple[float, int, dict]:
        """One training step on the numpy ``data`` of the input and loss keys; returns the
        loss, the new iteration and the numpy arrays of the ``requested`` outputs/gradients."""
        tensors = {key: to_tensor(values, self._device) for key, values in data.items()}
        args, kwargs = split_arguments(self.node, self.inputs, tensors, "input")
        self.optimizer.zero_grad()
        self._collector.recorded.clear()
        outputs = self._collector.collect(self.model(*args, **kwargs))
        by_key = {key: self._collector.pick(outputs, name, key)
                  for name, key in self.outputs.items()}
        watched = {key: self._collector.pick(outputs, name, key)
                   for name, key in self.gradients.items() if key in requested}
        for tensor in watched.values():
            if tensor.requires_grad:
                tensor.retain_grad()
        loss_values = {**tensors, **by_key}
        loss_args, loss_kwargs = split_arguments(self.node, self.loss_inputs, loss_values,
                                                 "loss input")
        loss = self.loss(*loss_args, **loss_kwargs)
        loss.backward()
        for key, tensor in watched.items():
            if tensor.grad is None:  # checked before the step: a failed batch changes nothing
                raise PipelineSetupError(
                    f"{self.node}: the loss does not depend on the output given for {key}, "
                    "so it has no gradient"
                )
        self.optimizer.step()

        arrays = {key: tensor.detach().cpu().numpy() for key, tensor in by_key.items()
                  if key in requested}
        arrays.update({key: tensor.grad.detach().cpu().numpy()
                       for key, tensor in watched.items()})
        loss_value = float(loss.detach().cpu())
        self.iteration += 1
        if self.save_every and self.iteration % self.save_every == 0:
            path = save_checkpoint(self.checkpoint_basename, self.iteration, self.model,
                                   self.optimizer)
            logger.info("%s: saved %s", self.node, path)
        if self._writer is not None and self.iteration % self.log_every == 0:
            self._writer.add_scalar("loss", loss_value, self.iteration)
        return loss_value, self.iteration, arrays

    def stop(self) -> None:
        """Flush and close the TensorBoard writer, remove the output hooks."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._collector is not None:
            self._collector.remove()
