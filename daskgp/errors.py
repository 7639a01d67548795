"""Exceptions raised by daskgp for user errors.

Every message names the node, the key and the ROIs involved, so a failing pipeline says where.
"""

from __future__ import annotations


class DaskgpError(Exception):
    """Base class of all daskgp errors."""


class BatchRequestError(DaskgpError):
    """A request cannot be satisfied (ROI outside the provided ROI, wrong voxel size, ...)."""


class BatchError(DaskgpError):
    """A node returned a batch that does not match its request."""


class PipelineSetupError(DaskgpError):
    """A pipeline or one of its nodes is misconfigured."""


class PipelineRequestError(DaskgpError):
    """A node failed while planning or building a batch; names the node and the request."""


class ArrayError(DaskgpError):
    """An array's data does not match its spec (shape, dtype, ROI)."""


class SourceError(DaskgpError):
    """A source cannot read a file or dataset; names the file and the dataset."""


class TaskError(DaskgpError):
    """A task of a node failed while the scheduler computed a batch; names the node and
    carries the original traceback in its message (it survives pickling to and from workers)."""
