"""Pure math for spatial augmentations: B-spline displacement, rotation and scale, source boxes.

``ElasticTransform`` says where each output voxel samples its source; ``source_box`` bounds what
a box of output voxels reads; ``chunked_warp`` applies a transform to a dask array chunk-wise;
``invert_points`` moves points where their image content goes.
``DeformTransform`` is one world-unit transform; its ``GridTransform`` views (one per voxel
grid) are ``ElasticTransform``s for all of the above. ``_kernels`` holds the compiled
kernels (numba, OpenCV's ``remap``) that ``warp_block`` runs; ``sample`` is the scipy reference.
"""

from ._bspline import (
    AxisSampling,
    contract,
    control_point_counts,
    mirror_index,
    spline_coefficients,
)
from ._deform import (
    DeformTransform,
    GridTransform,
    KnotSampling,
    control_lattice,
    plane_rotation,
    quaternion_rotation,
    world_displacement,
)
from ._elastic import (
    ElasticTransform,
    section_shifts,
    source_bounds,
    source_box,
    source_coordinates,
    tight_source_box,
)
from ._points import invert_points, transform_sample, warp_locations
from ._warp import (
    Normalization,
    ScaleShift,
    SourceBlocks,
    chunked_warp,
    fused_source,
    mark_normalized,
    mark_warp_output,
    output_chunk_shape,
    sample,
    sectioned_mean,
    warp_block,
    warp_rebuild,
)

__all__ = [
    "AxisSampling",
    "DeformTransform",
    "ElasticTransform",
    "GridTransform",
    "KnotSampling",
    "Normalization",
    "ScaleShift",
    "SourceBlocks",
    "chunked_warp",
    "contract",
    "control_lattice",
    "control_point_counts",
    "invert_points",
    "fused_source",
    "mirror_index",
    "plane_rotation",
    "mark_normalized",
    "mark_warp_output",
    "output_chunk_shape",
    "quaternion_rotation",
    "sample",
    "section_shifts",
    "sectioned_mean",
    "source_bounds",
    "source_box",
    "source_coordinates",
    "spline_coefficients",
    "transform_sample",
    "tight_source_box",
    "warp_block",
    "warp_locations",
    "warp_rebuild",
    "world_displacement",
]
