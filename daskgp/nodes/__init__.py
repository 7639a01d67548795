"""The nodes of daskgp, one per module, with gunpowder's names."""

from ..provider import BatchFilter, BatchProvider
from .add_affinities import AddAffinities
from .array_source import ArraySource
from .as_type import AsType
from .balance_labels import BalanceLabels
from .crop import Crop
from .csv_points_source import CsvPointsSource
from .daisy_request_blocks import DaisyRequestBlocks
from .defect_augment import DefectAugment
from .deform_augment import DeformAugment
from .downsample import DownSample
from .dvid_source import DvidSource
from .elastic_augment import ElasticAugment
from .exclude_labels import ExcludeLabels
from .gp_array_source import GPArraySource
from .graph_source import GPGraphSource, GraphSource
from .grow_boundary import GrowBoundary
from .hdf5_source import Hdf5Source
from .hdf5_write import Hdf5Write
from .intensity_augment import IntensityAugment
from .intensity_scale_shift import IntensityScaleShift
from .iterate_locations import IterateLocations
from .klb_source import KlbSource
from .merge_provider import MergeProvider
from .noise_augment import NoiseAugment
from .normalize import Normalize
from .pad import Pad
from .pre_cache import PreCache
from .precomputed_source import PrecomputedSource
from .print_profiling_stats import PrintProfilingStats
from .random_location import RandomLocation
from .random_provider import RandomProvider
from .rasterize_graph import RasterizationSettings, RasterizeGraph
from .reject import Reject
from .renumber_connected_components import RenumberConnectedComponents
from .resample import Resample
from .scan import Scan
from .scan_callback import ScanCallback
from .shift_augment import ShiftAugment
from .simple_augment import SimpleAugment
from .snapshot import Snapshot
from .specified_location import SpecifiedLocation
from .squeeze import Squeeze
from .stack import Stack
from .unsqueeze import Unsqueeze
from .upsample import UpSample
from .zarr_source import ZarrSource
from .zarr_write import ZarrWrite

__all__ = [
    "ArraySource",
    "AsType",
    "Crop",
    "CsvPointsSource",
    "DaisyRequestBlocks",
    "DefectAugment",
    "DeformAugment",
    "ElasticAugment",
    "GPGraphSource",
    "GraphSource",
    "Hdf5Source",
    "Hdf5Write",
    "IntensityAugment",
    "IntensityScaleShift",
    "IterateLocations",
    "MergeProvider",
    "NoiseAugment",
    "Normalize",
    "Pad",
    "PreCache",
    "PrecomputedSource",
    "PrintProfilingStats",
    "RandomLocation",
    "RasterizationSettings",
    "RasterizeGraph",
    "Scan",
    "ShiftAugment",
    "SimpleAugment",
    "Snapshot",
    "SpecifiedLocation",
    "Squeeze",
    "Stack",
    "Unsqueeze",
    "ZarrSource",
    "ZarrWrite",
    # Label nodes (issue 10)
    "AddAffinities",
    "BalanceLabels",
    "ExcludeLabels",
    "GrowBoundary",
    "RandomProvider",
    "Reject",
    "DownSample",
    "UpSample",
    "RenumberConnectedComponents",
    "Resample",
    # gunpowder names that complete its namespace (issue 11)
    "BatchFilter",
    "BatchProvider",
    "DvidSource",
    "GPArraySource",
    "KlbSource",
    "ScanCallback",
]
