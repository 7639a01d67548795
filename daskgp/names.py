"""Task-name prefixes derived from node names, so the dask dashboard shows where time goes."""

from __future__ import annotations

import re
import traceback

from .errors import MAX_QUOTED_CHARS, DaskgpError, TaskError, shorten


def task_prefix(name: str) -> str:
    """``"ElasticAugment"`` -> ``"elastic-augment"``.

    Example:
        >>> task_prefix("ZarrSource")
        'zarr-source'
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).replace("_", "-").lower()


class NodeTask:
    """A picklable task function that names its node when it fails.

    The original exception and its traceback text are kept in the ``TaskError`` message,
    because tracebacks do not survive the trip back from a worker process.

    Example:
        >>> task = NodeTask(divmod, "ElasticAugment")
        >>> task(7, 2)
        (3, 1)
    """

    def __init__(self, func, node_name: str) -> None:
        self.func = func
        self.node_name = node_name

    def __call__(self, *args, **kwargs):
        try:
            return self.func(*args, **kwargs)
        except DaskgpError:  # already names its node
            raise
        except Exception as error:
            frames = "".join(traceback.format_tb(error.__traceback__))
            raise TaskError(
                f"{self.node_name}: a task failed with {type(error).__name__}: "
                f"{shorten(error)}\noriginal traceback:\n"
                f"{shorten(frames, 4 * MAX_QUOTED_CHARS)}"
            ) from error

    def __dask_tokenize__(self):
        return ("NodeTask", self.func.__module__, self.func.__qualname__, self.node_name)
