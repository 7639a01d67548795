"""Task-name prefixes derived from node names, so the dask dashboard shows where time goes."""

from __future__ import annotations

import re


def task_prefix(name: str) -> str:
    """``"ElasticAugment"`` -> ``"elastic-augment"``.

    Example:
        >>> task_prefix("ZarrSource")
        'zarr-source'
    """
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", name).replace("_", "-").lower()
