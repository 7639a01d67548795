"""Shared helpers of the torch nodes: the device, numpy <-> tensor, calling a model with inputs
by position or name, and collecting its outputs by position or by submodule name (gunpowder's
forward hooks)."""

from __future__ import annotations

import numpy as np

from ..errors import PipelineSetupError
from ..keys import ArrayKey
from ..specs import ArraySpec


def resolve_device(node: str, device: str):
    """``torch.device(device)``, or a ``PipelineSetupError`` naming ``device="cpu"`` where CUDA
    is asked for and not available (gunpowder falls back to the CPU without a word).

    Example:
        >>> resolve_device("Train", "cpu")
        device(type='cpu')
    """
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise PipelineSetupError(
            f'{node}: device="{device}" but CUDA is not available on this machine (torch '
            f'{torch.__version__}); pass device="cpu" to run on the CPU'
        )
    return torch.device(device)


def to_tensor(data: np.ndarray, device):
    """``data`` as a tensor on ``device``, in its batch layout (no axis is moved or added).

    Read-only or negatively strided arrays (a mirrored batch) are copied first: torch takes
    neither.

    Example:
        >>> to_tensor(np.arange(3)[::-1], "cpu")
        tensor([2, 1, 0])
    """
    import torch

    data = np.asarray(data)
    if not data.flags.writeable or any(stride < 0 for stride in data.strides):
        data = np.array(data)
    return torch.as_tensor(data, device=device)


def split_arguments(node: str, mapping: dict, values: dict, role: str) -> tuple[list, dict]:
    """``(args, kwargs)`` for a ``{position or name: key}`` map: positions 0, 1, ... become
    positional arguments, names keyword arguments.

    Example:
        >>> split_arguments("Train", {0: "a", "mask": "b"}, {"a": 1, "b": 2}, "input")
        ([1], {'mask': 2})
    """
    positions = sorted(k for k in mapping if isinstance(k, int))
    if positions != list(range(len(positions))):
        raise PipelineSetupError(
            f"{node}: the positions of the {role}s must be 0, 1, 2, ... without gaps; got "
            f"{positions} in {mapping}"
        )
    others = [k for k in mapping if not isinstance(k, (int, str))]
    if others:
        raise PipelineSetupError(
            f"{node}: {role} names must be positions (int) or argument names (str), got {others}"
        )
    args = [values[mapping[i]] for i in positions]
    kwargs = {k: values[v] for k, v in mapping.items() if isinstance(k, str)}
    return args, kwargs


class OutputCollector:
    """Collects a model's outputs by position (in what ``forward`` returns) or by name.

    A name is the attribute name of a submodule, whose output a forward hook records (as in
    gunpowder), or a key of the dict ``forward`` returns.

    Example:
        >>> import torch
        >>> model = torch.nn.Sequential()
        >>> model.add_module("features", torch.nn.Linear(2, 3))
        >>> model.add_module("head", torch.nn.Linear(3, 1))
        >>> collector = OutputCollector("Predict", model, [0, "features"])
        >>> outputs = collector.collect(model(torch.ones(4, 2)))
        >>> outputs[0].shape, outputs["features"].shape
        (torch.Size([4, 1]), torch.Size([4, 3]))
    """

    def __init__(self, node: str, model, names) -> None:
        import torch

        self.node = node
        self.recorded: dict[str, object] = {}
        self._handles = [
            getattr(model, name).register_forward_hook(self._recorder(name))
            for name in dict.fromkeys(names)
            if isinstance(name, str) and isinstance(getattr(model, name, None), torch.nn.Module)
        ]

    def _recorder(self, name: str):
        def record(module, inputs, output):
            self.recorded[name] = output

        return record

    def remove(self) -> None:
        """Remove the forward hooks from the model."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def collect(self, returned) -> dict:
        """``{position or name: tensor}`` from what ``forward`` returned and the hooks saw."""
        import torch

        if isinstance(returned, dict):
            outputs = dict(returned)
        elif isinstance(returned, (tuple, list)):
            outputs = dict(enumerate(returned))
        elif isinstance(returned, torch.Tensor):
            outputs = {0: returned}
        else:
            raise PipelineSetupError(
                f"{self.node}: the model's forward() returned a {type(returned).__name__}; "
                "return a tensor, a tuple of tensors or a dict of tensors"
            )
        outputs.update(self.recorded)
        return outputs

    def pick(self, outputs: dict, name, key: ArrayKey):
        """The output called ``name``, or an error naming the key and what the model has."""
        if name not in outputs:
            raise PipelineSetupError(
                f"{self.node}: the model has no output {name!r} for {key}: forward() gave "
                f"{sorted(map(repr, outputs))}; a name must be a submodule of the model (its "
                "output is recorded by a forward hook) or a key of the dict forward() returns"
            )
        return outputs[name]


def output_specs(node: str, inputs: dict, provided, spec, array_specs: dict) -> dict:
    """gunpowder's specs of the arrays a model node provides: those given in ``array_specs``,
    with the inputs' common voxel size where unset and ``interpolatable=False`` by default."""
    voxel_sizes = {spec[key].voxel_size for key in inputs.values()
                   if isinstance(key, ArrayKey) and not spec[key].nonspatial}
    specs = {}
    for key in provided:
        result = array_specs[key].copy() if key in array_specs else ArraySpec()
        if result.voxel_size is None and not result.nonspatial:
            if len(voxel_sizes) != 1:
                raise PipelineSetupError(
                    f"{node}: the inputs {list(inputs.values())} have no common voxel size "
                    f"({sorted(map(str, voxel_sizes))}); give {key} an ArraySpec with a "
                    "voxel_size in array_specs"
                )
            result.voxel_size = next(iter(voxel_sizes))
        if result.interpolatable is None:
            result.interpolatable = False
        specs[key] = result
    return specs
