"""Checkpoints in gunpowder's torch format: ``torch.save({"model_state_dict": ...,
"optimizer_state_dict": ...}, f"{basename}_checkpoint_{iteration}")``, found, written, loaded."""

from __future__ import annotations

import glob
import os
import re

from ..errors import PipelineSetupError


def checkpoint_name(basename: str, iteration: int) -> str:
    """gunpowder's checkpoint file name.

    Example:
        >>> checkpoint_name("runs/model", 2000)
        'runs/model_checkpoint_2000'
    """
    return f"{basename}_checkpoint_{int(iteration)}"


def latest_checkpoint(basename: str) -> tuple[str | None, int]:
    """``(path, iteration)`` of the newest ``<basename>_checkpoint_<iteration>``, or
    ``(None, 0)``. Files whose name does not end in the iteration number are ignored.

    Example:
        >>> latest_checkpoint("/nonexistent/model")
        (None, 0)
    """
    pattern = re.compile(re.escape(os.path.basename(basename)) + r"_checkpoint_(\d+)$")
    found = [(int(match.group(1)), path)
             for path in glob.glob(f"{glob.escape(basename)}_checkpoint_*")
             if (match := pattern.fullmatch(os.path.basename(path)))]
    if not found:
        return None, 0
    iteration, path = max(found)
    return path, iteration


def save_checkpoint(basename: str, iteration: int, model, optimizer) -> str:
    """Write model and optimizer state as ``<basename>_checkpoint_<iteration>``; return the path.

    The file is written under a temporary name and renamed, so a crash while saving never
    leaves a truncated checkpoint for the next run to resume from.
    """
    import torch

    path = checkpoint_name(basename, iteration)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{os.path.basename(path)}.partial")
    torch.save({"model_state_dict": model.state_dict(),
                "optimizer_state_dict": optimizer.state_dict()}, partial)
    os.replace(partial, path)
    return path


def load_checkpoint(node: str, path: str, device) -> dict:
    """The dict saved in ``path``, its tensors on ``device``; a clear error naming the file."""
    import torch

    try:
        return torch.load(path, map_location=device)
    except FileNotFoundError:
        raise PipelineSetupError(f"{node}: checkpoint {path!r} does not exist") from None
    except Exception as error:
        raise PipelineSetupError(
            f"{node}: cannot load checkpoint {path!r}: {type(error).__name__}: {error}"
        ) from error


def model_state(node: str, path: str, checkpoint) -> dict:
    """The model's state dict in a loaded checkpoint: its ``model_state_dict``, or the whole
    file where it is a bare state dict (both are what gunpowder's ``Predict`` loads)."""
    if not isinstance(checkpoint, dict):
        raise PipelineSetupError(
            f"{node}: checkpoint {path!r} holds a {type(checkpoint).__name__}, not a state dict "
            "or a dict with 'model_state_dict'"
        )
    return checkpoint.get("model_state_dict", checkpoint)
