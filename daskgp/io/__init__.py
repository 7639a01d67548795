"""Reading zarr and HDF5 datasets lazily: picklable readers, metadata, chunk-aligned regions.

Sources (``ZarrSource``, ``Hdf5Source``) build on these; users may call them directly.
"""

from .array_writer import DatasetLayout, Hdf5ArrayWriter, ZarrArrayWriter, write_blocks
from .hdf5_reader import Hdf5Reader
from .layout import StorageLayout, dataset_array_spec
from .metadata import (
    MetadataError,
    SpatialMetadata,
    gunpowder_metadata,
    ome_ngff_metadata,
    read_spatial_metadata,
)
from .region import RegionView, read_region, storage_aligned_chunks
from .zarr_reader import ZarrReader

__all__ = [
    "DatasetLayout",
    "Hdf5ArrayWriter",
    "Hdf5Reader",
    "MetadataError",
    "RegionView",
    "SpatialMetadata",
    "StorageLayout",
    "ZarrArrayWriter",
    "ZarrReader",
    "dataset_array_spec",
    "gunpowder_metadata",
    "ome_ngff_metadata",
    "read_region",
    "read_spatial_metadata",
    "storage_aligned_chunks",
    "write_blocks",
]
