"""The nodes of daskgp, one per module, with gunpowder's names."""

from .array_source import ArraySource
from .as_type import AsType
from .crop import Crop
from .daisy_request_blocks import DaisyRequestBlocks
from .defect_augment import DefectAugment
from .deform_augment import DeformAugment
from .elastic_augment import ElasticAugment
from .hdf5_source import Hdf5Source
from .hdf5_write import Hdf5Write
from .intensity_augment import IntensityAugment
from .intensity_scale_shift import IntensityScaleShift
from .merge_provider import MergeProvider
from .noise_augment import NoiseAugment
from .normalize import Normalize
from .pad import Pad
from .pre_cache import PreCache
from .precomputed_source import PrecomputedSource
from .print_profiling_stats import PrintProfilingStats
from .random_location import RandomLocation
from .scan import Scan
from .shift_augment import ShiftAugment
from .simple_augment import SimpleAugment
from .snapshot import Snapshot
from .squeeze import Squeeze
from .stack import Stack
from .unsqueeze import Unsqueeze
from .zarr_source import ZarrSource
from .zarr_write import ZarrWrite

__all__ = [
    "ArraySource",
    "AsType",
    "Crop",
    "DaisyRequestBlocks",
    "DefectAugment",
    "DeformAugment",
    "ElasticAugment",
    "Hdf5Source",
    "Hdf5Write",
    "IntensityAugment",
    "IntensityScaleShift",
    "MergeProvider",
    "NoiseAugment",
    "Normalize",
    "Pad",
    "PreCache",
    "PrecomputedSource",
    "PrintProfilingStats",
    "RandomLocation",
    "Scan",
    "ShiftAugment",
    "SimpleAugment",
    "Snapshot",
    "Squeeze",
    "Stack",
    "Unsqueeze",
    "ZarrSource",
    "ZarrWrite",
]
