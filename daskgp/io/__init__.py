"""Reading zarr and HDF5 datasets lazily: picklable readers, metadata, chunk-aligned regions.

Sources (``ZarrSource``, ``Hdf5Source``) build on these; users may call them directly.
"""

from .array_writer import DatasetLayout, Hdf5ArrayWriter, ZarrArrayWriter, write_blocks
from .checksums import block_checksum, data_checksum, pipeline_fingerprint
from .hdf5_reader import Hdf5Reader
from .layout import StorageLayout, dataset_array_spec
from .locks import OutputLock, OutputLockedError
from .metadata import (
    MetadataError,
    SpatialMetadata,
    gunpowder_metadata,
    ome_ngff_metadata,
    read_spatial_metadata,
)
from .region import RegionView, WorldGeometry, read_region, storage_aligned_chunks
from .zarr_reader import ZarrReader

__all__ = [
    "DatasetLayout",
    "Hdf5ArrayWriter",
    "Hdf5Reader",
    "MetadataError",
    "OutputLock",
    "OutputLockedError",
    "RegionView",
    "SpatialMetadata",
    "StorageLayout",
    "WorldGeometry",
    "ZarrArrayWriter",
    "ZarrReader",
    "block_checksum",
    "data_checksum",
    "dataset_array_spec",
    "gunpowder_metadata",
    "ome_ngff_metadata",
    "pipeline_fingerprint",
    "read_region",
    "read_spatial_metadata",
    "storage_aligned_chunks",
    "write_blocks",
]
