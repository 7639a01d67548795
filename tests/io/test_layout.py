"""From a stored array's shape, dtype and metadata to the ArraySpec a source provides."""

from __future__ import annotations

import numpy as np
import pytest

from daskgp.geometry import Coordinate, Roi
from daskgp.io.layout import dataset_array_spec
from daskgp.io.metadata import MetadataError, SpatialMetadata
from daskgp.specs import ArraySpec

META = SpatialMetadata(voxel_size=Coordinate(4, 2, 2), offset=Coordinate(8, 4, 0))


def test_channels_first_spec_and_layout():
    spec, layout = dataset_array_spec((3, 10, 20, 30), np.dtype("uint8"), (1, 5, 5, 5), META,
                                      None, channels_first=True)
    assert spec.roi == Roi((8, 4, 0), (40, 40, 60))
    assert spec.voxel_size == (4, 2, 2) and spec.dtype == np.uint8 and spec.interpolatable
    assert layout.channel_shape == (3,) and layout.spatial_shape == (10, 20, 30)
    assert layout.axes == (0, 1, 2, 3)
    assert layout.storage_region((1, 2, 3), (4, 5, 6)) == ((0, 1, 2, 3), (3, 5, 7, 9))


def test_channels_last_layout_moves_channels_first():
    spec, layout = dataset_array_spec((10, 20, 30, 3), np.dtype("float32"), None, META, None,
                                      channels_first=False)
    assert spec.roi == Roi((8, 4, 0), (40, 40, 60))
    assert layout.axes == (3, 0, 1, 2)
    assert layout.storage_region((1, 2, 3), (4, 5, 6)) == ((1, 2, 3, 0), (5, 7, 9, 3))


def test_defaults_without_metadata():
    spec, layout = dataset_array_spec((10, 20), np.dtype("uint64"), None, SpatialMetadata(),
                                      None, True)
    assert spec.voxel_size == (1, 1) and spec.roi == Roi((0, 0), (10, 20))
    assert not spec.interpolatable and layout.channel_shape == ()
    ome_axes = SpatialMetadata(spatial_axes=(False, True, True))
    spec, layout = dataset_array_spec((2, 10, 20), np.dtype("uint8"), None, ome_axes, None, True)
    assert spec.voxel_size == (1, 1) and layout.channel_shape == (2,)


def test_user_spec_wins():
    user = ArraySpec(roi=Roi((0, 0, 0), (20, 20, 20)), voxel_size=(2, 2, 2),
                     interpolatable=False)
    spec, _ = dataset_array_spec((10, 20, 30), np.dtype("uint8"), None, META, user, True)
    assert spec.roi == user.roi and spec.voxel_size == (2, 2, 2) and not spec.interpolatable


@pytest.mark.parametrize(
    "shape, metadata, user, channels_first, message",
    [
        ((10, 20), META, None, True, "wrong number of dimensions"),
        ((10, 20, 30), META, None, False, "no channel axis"),
        ((10, 20, 30), SpatialMetadata(Coordinate(4, 2, 2), Coordinate(2, 0, 0)), None, True,
         "not a multiple"),
        ((10, 20, 30), SpatialMetadata(Coordinate(4, 2, 2), Coordinate(0, 0)), None, True,
         "2 dimensions"),
        ((10, 20, 30), META, ArraySpec(dtype=np.int8), True, "dtype int8"),
        ((10, 20, 30), META, ArraySpec(roi=Roi((0, 0, 0), (44, 4, 4))), True, "does not fit"),
        ((2, 10, 20), SpatialMetadata(spatial_axes=(True, True, False)), None, True,
         "OME-NGFF axes"),
    ],
)
def test_errors(shape, metadata, user, channels_first, message):
    with pytest.raises(MetadataError, match=message):
        dataset_array_spec(shape, np.dtype("uint8"), None, metadata, user, channels_first)

