"""Shared helpers of the TensorFlow nodes: materializing inputs, calling a Keras model by names
or positions, and converting between daskgp's (batch, channels, *spatial) layout and Keras's
channels-last layout."""

from __future__ import annotations

import numpy as np

from ..batch import Array, Batch, compute_arrays
from ..errors import ArrayError, PipelineSetupError
from ..keys import ArrayKey
from ..request import BatchRequest
from ..specs import ArraySpec


def materialize(batch: Batch, keys, scheduler) -> dict[ArrayKey, np.ndarray]:
    """numpy data of ``keys``, computing the lazy ones in one ``dask.compute``
    (``compute_arrays``)."""
    lazy = [k for k in keys if batch[k].is_lazy]
    values = compute_arrays([batch[k].data for k in lazy], scheduler=scheduler)
    data = {k: np.asarray(batch[k].data) for k in keys if k not in lazy}
    data.update(dict(zip(lazy, values, strict=True)))
    return data


def to_model_layout(data: np.ndarray, spatial_dims: int, data_format: str) -> np.ndarray:
    """(N, C, *spatial), (C, *spatial) or (*spatial) -> what a Keras model takes.

    ``channels_last`` gives (N, *spatial, C), adding N=1 and C=1 where missing;
    ``channels_first`` passes the data through. One leading axis is a channel axis, as in
    gunpowder's data model (a batch has no batch axis until ``Stack``; affinities and LSDs are
    (C, *spatial)) and in torch's unbatched convolutions: a (3, z, y, x) target meets the
    model's (1, z, y, x, 3) output. After ``Stack(n)`` of single-channel arrays, add the
    channel axis (``Unsqueeze([key], 1)``) to make the n a batch axis.

    Example:
        >>> to_model_layout(np.zeros((2, 3, 4, 5)), 2, "channels_last").shape
        (2, 4, 5, 3)
        >>> to_model_layout(np.zeros((3, 4, 5)), 2, "channels_last").shape
        (1, 4, 5, 3)
    """
    if data_format == "channels_first":
        return data
    leading = data.ndim - spatial_dims
    if leading == 0:
        data = data[None, None]
    elif leading == 1:
        data = data[None]
    elif leading != 2:
        raise ArrayError(
            f"cannot move channels last in an array of shape {data.shape} with {spatial_dims} "
            "spatial dimensions: expected (N, C, *spatial), (C, *spatial) or (*spatial)"
        )
    return np.moveaxis(data, 1, -1)


def from_model_layout(data: np.ndarray, spatial_dims: int, data_format: str) -> np.ndarray:
    """The inverse of ``to_model_layout`` for outputs: (N, *spatial, C) -> (N, C, *spatial)."""
    if data_format == "channels_first" or data.ndim < spatial_dims + 2:
        return data
    return np.moveaxis(data, -1, 1)


def arrange(mapping: dict, values: dict):
    """Positional list, name dict, or the single value, for a ``{name or index: key}`` map."""
    names = list(mapping)
    if all(isinstance(n, int) for n in names):
        ordered = [values[mapping[i]] for i in sorted(names)]
        return ordered[0] if len(ordered) == 1 else ordered
    if all(isinstance(n, str) for n in names):
        return {n: values[mapping[n]] for n in names}
    raise PipelineSetupError(f"mix of positions and names in {mapping}: use one or the other")


def split_outputs(outputs, mapping: dict, model) -> dict:
    """``{name or index: tensor}`` from whatever a Keras model returned."""
    if isinstance(outputs, dict):
        return outputs
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    result = dict(enumerate(outputs))
    for index, name in enumerate(getattr(model, "output_names", None) or []):
        if index < len(outputs):
            result[name] = outputs[index]
    missing = [n for n in mapping if n not in result]
    if missing:
        raise PipelineSetupError(
            f"the model has no output {missing}; it has {sorted(map(str, result))}"
        )
    return result


def output_array(node: str, key: ArrayKey, data: np.ndarray, request: BatchRequest,
                 spec: ArraySpec) -> Array:
    """``data`` as the requested ``key``, or an ``ArrayError`` naming node, key and shapes."""
    spec = spec.copy()
    spec.roi = request[key].roi
    spec.dtype = data.dtype
    try:
        return Array(data, spec)
    except ArrayError as error:
        raise ArrayError(
            f"{node}: the model's output for {key} has shape {data.shape}, which does not fit "
            f"the requested ROI {spec.roi} at voxel size {spec.voxel_size}: {error}"
        ) from None


def check_requested(node: str, keys, request: BatchRequest, role: str) -> None:
    """Raise a clear error for keys the node needs that the request does not contain."""
    for key in keys:
        if key not in request:
            raise PipelineSetupError(
                f"{node}: {role} {key} is not in the request; add it to the BatchRequest "
                f"(request.add({key}, shape)); the request has {request.keys()}"
            )


def input_dependencies(node: str, keys, request: BatchRequest) -> BatchRequest:
    """What a model node asks upstream for: ``keys`` (each must be requested) at their
    requested ROIs."""
    keys = list(dict.fromkeys(keys))
    check_requested(node, keys, request, "input")
    deps = BatchRequest()
    for key in keys:
        deps[key] = request[key].copy()
    return deps


def batch_loss_keys(loss_inputs: dict, outputs: dict) -> list:
    """The loss inputs that come from the batch, not from the model's outputs."""
    produced = set(outputs.values())
    return [key for key in loss_inputs.values() if key not in produced]
