"""The nodes of daskgp, one per module, with gunpowder's names."""

from .array_source import ArraySource
from .merge_provider import MergeProvider

__all__ = [
    "ArraySource",
    "MergeProvider",
]
