"""The nodes of daskgp, one per module, with gunpowder's names."""

from .array_source import ArraySource
from .hdf5_source import Hdf5Source
from .intensity_augment import IntensityAugment
from .merge_provider import MergeProvider
from .noise_augment import NoiseAugment
from .pre_cache import PreCache
from .simple_augment import SimpleAugment
from .zarr_source import ZarrSource

__all__ = [
    "ArraySource",
    "Hdf5Source",
    "IntensityAugment",
    "MergeProvider",
    "NoiseAugment",
    "PreCache",
    "SimpleAugment",
    "ZarrSource",
]
