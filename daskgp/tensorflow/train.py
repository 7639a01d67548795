"""``Train``: one TensorFlow 2 / Keras 3 training step per batch, with checkpoints and logs."""

from __future__ import annotations

import glob
import os
import re

import numpy as np

from ..batch import Batch
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler
from ..specs import ArraySpec
from ._tensors import (
    arrange,
    batch_loss_keys,
    check_requested,
    from_model_layout,
    input_dependencies,
    materialize,
    output_array,
    split_outputs,
    to_model_layout,
)


class Train(BatchFilter):
    """Train a Keras model: one ``tf.function`` step per batch.

    A materialization boundary: the arrays the step needs are computed here (one
    ``dask.compute``, or already numpy behind a ``PreCache``). The signature mirrors gunpowder's
    torch ``Train``; gunpowder's TensorFlow nodes are TensorFlow 1 only.

    Args:
        model (keras.Model): the model, built (its input shapes known).
        loss (callable): the loss, called with the arrays named by ``loss_inputs``.
        optimizer (keras.optimizers.Optimizer): the optimizer.
        inputs (dict): ``{model input position (int) or name (str): ArrayKey}``.
        outputs (dict): ``{model output position or name: ArrayKey}``; each output is put in
            the batch under its key, with the requested ROI.
        loss_inputs (dict): ``{loss argument position or name: ArrayKey}``; a key of
            ``outputs`` stands for that model output, any other key for a batch array.
        gradients (dict, optional): ``{model output position or name: ArrayKey}``: put the
            gradient of the loss with respect to that output in the batch.
        array_specs (dict, optional): ``{ArrayKey: ArraySpec}`` for outputs and gradients
            (voxel size, interpolatable); by default those of the first input.
        checkpoint_basename (str): checkpoints are ``<basename>_checkpoint_<iteration>``
            (model and optimizer state); training resumes from the latest one.
        save_every (int): save a checkpoint every this many iterations.
        log_dir (str, optional): write TensorBoard scalars (loss) here.
        log_every (int): log every this many iterations.
        data_format (str): "channels_last" (Keras's default: batch arrays of shape
            (N, C, *spatial) are given to the model as (N, *spatial, C), outputs converted
            back; missing N or C axes are added, a single leading axis is C) or
            "channels_first" (arrays passed as they are).

    Example:
        >>> train = Train(model, loss=keras.losses.MeanSquaredError(),   # doctest: +SKIP
        ...               optimizer=keras.optimizers.Adam(1e-4), inputs={0: raw},
        ...               outputs={0: pred}, loss_inputs={0: gt, 1: pred})
    """

    lazy = True
    accepts_numpy = True

    def __new__(cls, *args, **kwargs):
        from .predict import refuse_tf1_signature

        refuse_tf1_signature(cls.__name__, args, kwargs, ("graph", "summary"))
        return super().__new__(cls)

    def __init__(self, model, loss, optimizer, inputs: dict, outputs: dict, loss_inputs: dict,
                 gradients: dict | None = None, array_specs: dict | None = None,
                 checkpoint_basename: str = "model", save_every: int = 2000,
                 log_dir: str | None = None, log_every: int = 1,
                 data_format: str = "channels_last") -> None:
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"Train: unknown data_format {data_format!r}")
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.loss_inputs = dict(loss_inputs)
        self.gradients = dict(gradients or {})
        self.array_specs = dict(array_specs or {})
        self.checkpoint_basename = checkpoint_basename
        self.save_every = save_every
        self.log_dir = log_dir
        self.log_every = log_every
        self.data_format = data_format
        self.iteration = 0
        self._step = None

    def setup(self) -> None:
        import tensorflow as tf

        check_requested(self.name(), self.inputs.values(), self.spec, "input")
        first = self.spec[next(iter(self.inputs.values()))]
        for key in [*self.outputs.values(), *self.gradients.values()]:
            default = ArraySpec(voxel_size=first.voxel_size, interpolatable=True)
            self.provides(key, self.array_specs.get(key, default))
        self.optimizer.build(self.model.trainable_variables)
        self._iteration = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                               iteration=self._iteration)
        latest = self.latest_checkpoint()
        if latest is not None:
            self._checkpoint.read(latest).assert_existing_objects_matched()
        self.iteration = int(self._iteration.numpy())
        self._writer = tf.summary.create_file_writer(self.log_dir) if self.log_dir else None
        self._step = tf.function(self._train_step)

    def latest_checkpoint(self) -> str | None:
        """The prefix of the newest ``<basename>_checkpoint_<iteration>``, or None."""
        prefixes = self._checkpoint_prefixes()
        return prefixes[-1] if prefixes else None

    def prepare(self, request: BatchRequest) -> BatchRequest:
        return input_dependencies(
            self.name(), [*self.inputs.values(), *self._batch_loss_keys()], request)

    def _batch_loss_keys(self) -> list:
        return batch_loss_keys(self.loss_inputs, self.outputs)

    def _train_step(self, model_inputs, loss_arrays):
        import tensorflow as tf

        with tf.GradientTape(persistent=bool(self.gradients)) as tape:
            predictions = split_outputs(self.model(model_inputs, training=True), self.outputs,
                                        self.model)
            values = {key: loss_arrays[key.identifier] for key in self._batch_loss_keys()}
            values.update({key: predictions[name] for name, key in self.outputs.items()})
            loss = _call(self.loss, arrange(self.loss_inputs, values))
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables,
                                           strict=True))
        outputs = {key.identifier: predictions[name] for name, key in self.outputs.items()}
        gradients = {key.identifier: tape.gradient(loss, predictions[name])
                     for name, key in self.gradients.items()}
        return loss, outputs, gradients

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        import tensorflow as tf

        needed = list(dict.fromkeys([*self.inputs.values(), *self._batch_loss_keys()]))
        data = materialize(batch, needed, current_scheduler())
        layout = {key: to_model_layout(data[key], batch[key].spec.roi.dims, self.data_format)
                  for key in needed}
        model_inputs = arrange(self.inputs, layout)
        loss_arrays = {key.identifier: layout[key] for key in self._batch_loss_keys()}
        loss, outputs, gradients = self._step(model_inputs, loss_arrays)

        self.iteration += 1
        self._iteration.assign(self.iteration)
        dims = batch[next(iter(self.inputs.values()))].spec.roi.dims
        result = Batch()
        for name_map, tensors in ((self.outputs, outputs), (self.gradients, gradients)):
            for key in name_map.values():
                if key in request:
                    values = from_model_layout(np.asarray(tensors[key.identifier]), dims,
                                               self.data_format)
                    result[key] = output_array(self.name(), key, values, request,
                                               self.spec[key])
        for key in needed:
            if key in request:
                result[key] = batch[key].__class__(data[key], batch[key].spec, batch[key].attrs)
        result.loss = float(loss)
        result.iteration = self.iteration
        if self._writer is not None and self.iteration % self.log_every == 0:
            with self._writer.as_default():
                tf.summary.scalar("loss", result.loss, step=self.iteration)
            self._writer.flush()
        if self.save_every and self.iteration % self.save_every == 0:
            self.save_checkpoint()
        return result

    def save_checkpoint(self) -> str:
        """Write model and optimizer state as ``<basename>_checkpoint_<iteration>``, and
        name it in the directory's ``checkpoint`` file as TF1's ``Saver`` did, so that
        ``tf.train.latest_checkpoint(directory)`` (how gunpowder scripts resume) finds it."""
        import tensorflow as tf

        directory = os.path.dirname(self.checkpoint_basename)
        if directory:
            os.makedirs(directory, exist_ok=True)
        path = self._checkpoint.write(f"{self.checkpoint_basename}_checkpoint_{self.iteration}")
        older = [prefix for prefix in self._checkpoint_prefixes() if prefix != path]
        tf.compat.v1.train.update_checkpoint_state(
            directory or ".", os.path.basename(path),
            all_model_checkpoint_paths=[os.path.basename(p) for p in [*older, path]])
        return path

    def _checkpoint_prefixes(self) -> list[str]:
        """The prefixes of this basename's checkpoints, oldest first."""
        pattern = re.compile(re.escape(self.checkpoint_basename) + r"_checkpoint_(\d+)\.index$")
        found = [(int(m.group(1)), path[: -len(".index")])
                 for path in glob.glob(f"{glob.escape(self.checkpoint_basename)}_checkpoint_*")
                 if (m := pattern.search(path))]
        return [prefix for _, prefix in sorted(found)]

    def teardown(self) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.close()


def _call(function, arguments):
    if isinstance(arguments, dict):
        return function(**arguments)
    if isinstance(arguments, list):
        return function(*arguments)
    return function(arguments)
