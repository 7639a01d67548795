"""``Predict``: runs a Keras model on each batch for inference inside a pipeline."""

from __future__ import annotations

import numpy as np

from ..batch import Batch
from ..errors import PipelineSetupError
from ..keys import ArrayKey
from ..provider import BatchFilter
from ..request import BatchRequest
from ..scheduling import current_scheduler
from ..specs import ArraySpec
from ._tensors import (
    arrange,
    check_requested,
    from_model_layout,
    input_dependencies,
    materialize,
    output_array,
    split_outputs,
    to_model_layout,
)


class Predict(BatchFilter):
    """Run ``model`` (inference mode) on the arrays named by ``inputs``.

    A materialization boundary: the inputs are computed here, the model runs in the driver's
    process (TensorFlow uses its own thread pool).

    Args:
        model (keras.Model): the model.
        inputs (dict): ``{model input position (int) or name (str): ArrayKey}``.
        outputs (dict): ``{model output position or name: ArrayKey}``, put in the batch with
            the requested ROIs.
        array_specs (dict, optional): ``{ArrayKey: ArraySpec}`` for the outputs; fields left
            None are filled as gunpowder does: the voxel size from the inputs' common one,
            ``interpolatable=False``.
        checkpoint (str, optional): a checkpoint prefix written by ``Train``
            (``<basename>_checkpoint_<iteration>``) to load the model's weights from.
        data_format (str): "channels_last" or "channels_first", as for ``Train``.

    Example:
        >>> predict = Predict(model, inputs={0: raw}, outputs={0: prediction})  # doctest: +SKIP
    """

    lazy = True
    accepts_numpy = True

    def __new__(cls, *args, **kwargs):
        refuse_tf1_signature(cls.__name__, args, kwargs, ("graph", "skip_empty",
                                                          "max_shared_memory"))
        return super().__new__(cls)

    def __init__(self, model, inputs: dict, outputs: dict, array_specs: dict | None = None,
                 checkpoint: str | None = None, data_format: str = "channels_last") -> None:
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"Predict: unknown data_format {data_format!r}")
        self.model = model
        self.inputs = dict(inputs)
        self.outputs = dict(outputs)
        self.array_specs = dict(array_specs or {})
        self.checkpoint = checkpoint
        self.data_format = data_format

    def setup(self) -> None:
        check_requested(self.name(), self.inputs.values(), self.spec, "input")
        # gunpowder's rule: an output spec's unset voxel size is the inputs' common one, and
        # an unset interpolatable is False.
        voxel_sizes = {self.spec[key].voxel_size for key in self.inputs.values()
                       if isinstance(key, ArrayKey)}
        common = next(iter(voxel_sizes)) if len(voxel_sizes) == 1 else None
        for key in self.outputs.values():
            spec = self.array_specs[key].copy() if key in self.array_specs else ArraySpec()
            if spec.voxel_size is None and not spec.nonspatial:
                if common is None:
                    raise PipelineSetupError(
                        f"{self.name()}: the inputs have different voxel sizes "
                        f"{sorted(map(str, voxel_sizes))} and array_specs gives none for "
                        f"{key}: pass array_specs={{{key}: ArraySpec(voxel_size=...)}}"
                    )
                spec.voxel_size = common
            if spec.interpolatable is None:
                spec.interpolatable = False
            self.provides(key, spec)
        if self.checkpoint is not None:
            import tensorflow as tf

            tf.train.Checkpoint(model=self.model).read(self.checkpoint).expect_partial()

    def prepare(self, request: BatchRequest) -> BatchRequest:
        return input_dependencies(self.name(), self.inputs.values(), request)

    def process(self, batch: Batch, request: BatchRequest) -> Batch:
        keys = list(dict.fromkeys(self.inputs.values()))
        data = materialize(batch, keys, current_scheduler())
        dims = batch[keys[0]].spec.roi.dims
        layout = {k: to_model_layout(data[k], batch[k].spec.roi.dims, self.data_format)
                  for k in keys}
        predictions = split_outputs(self.model(arrange(self.inputs, layout), training=False),
                                    self.outputs, self.model)
        result = Batch()
        for name, key in self.outputs.items():
            if key in request:
                values = from_model_layout(np.asarray(predictions[name]), dims, self.data_format)
                result[key] = output_array(self.name(), key, values, request, self.spec[key])
        return result


_TF2_USAGE = {
    "Train": "pass model=, loss=, optimizer=, inputs=, outputs=, loss_inputs=",
    "Predict": "pass model=, inputs=, outputs= (and checkpoint= to load weights)",
}


def refuse_tf1_signature(node: str, args: tuple, kwargs: dict, tf1_keywords) -> None:
    """Raise a ``PipelineSetupError`` that says what to pass instead when a TF1-era
    gunpowder call (a meta-graph file name, ``graph=``) reaches daskgp's TF2 nodes."""
    first = args[0] if args else kwargs.get("model")
    used = sorted(k for k in kwargs if k in tf1_keywords)
    if isinstance(first, str) or used:
        given = f"a meta-graph name {first!r}" if isinstance(first, str) else \
            f"{', '.join(used)}="
        raise PipelineSetupError(
            f"daskgp's tensorflow.{node} is TF2/Keras 3, but got {given} (gunpowder's TF1 "
            f"signature): {_TF2_USAGE[node]}, with a keras.Model built in Python; see "
            "docs/gunpowder.md"
        )
