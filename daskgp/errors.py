"""Exceptions raised by daskgp for user errors.

Every message names the node, the key and the ROIs involved, so a failing pipeline says where.
"""

from __future__ import annotations

#: Longest text of one value (an exception's message, a repr) that an error message quotes.
MAX_QUOTED_CHARS = 1500


def shorten(text: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """``str(text)``, its middle cut out if longer than ``limit``, so errors stay readable.

    Example:
        >>> shorten("x" * 5000, limit=20)
        'xxxxxxxxxx[... 4980 characters cut ...]xxxxxxxxxx'
    """
    text = str(text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}[... {len(text) - 2 * half} characters cut ...]{text[-half:]}"


class DaskgpError(Exception):
    """Base class of all daskgp errors.

    gunpowder's error attributes are kept where known (None otherwise): ``provider`` (the
    node), ``request``, ``batch``, ``pipeline`` and ``original_traceback`` (a list of lines).
    """

    provider = None
    request = None
    batch = None
    pipeline = None
    original_traceback: list[str] | None = None


class BatchRequestError(DaskgpError):
    """A request cannot be satisfied (ROI outside the provided ROI, wrong voxel size, ...)."""


class BatchError(DaskgpError):
    """A node returned a batch that does not match its request."""


class PipelineSetupError(DaskgpError):
    """A pipeline or one of its nodes is misconfigured."""


class PipelineRequestError(DaskgpError):
    """A node failed while planning or building a batch; names the node and the request."""


class PipelineTeardownError(DaskgpError):
    """A node failed while the pipeline was torn down; names the node."""


class ArrayError(DaskgpError):
    """An array's data does not match its spec (shape, dtype, ROI)."""


class SourceError(DaskgpError):
    """A source cannot read a file or dataset; names the file and the dataset."""


class TaskError(DaskgpError):
    """A task of a node failed while the scheduler computed a batch; names the node and
    carries the original traceback in its message (it survives pickling to and from workers)."""


class UnsupportedError(DaskgpError):
    """A gunpowder name that daskgp keeps only to refuse its use: the message says what to
    use instead and why."""
