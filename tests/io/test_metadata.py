"""Voxel size and offset from gunpowder attributes and OME-NGFF 0.4 / 0.5 multiscales."""

from __future__ import annotations

import pytest

from daskgp.geometry import Coordinate
from daskgp.io.metadata import (
    MetadataError,
    SpatialMetadata,
    gunpowder_metadata,
    integer_coordinate,
    ome_ngff_metadata,
    read_spatial_metadata,
)

AXES = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"},
        {"name": "z", "type": "space"}, {"name": "y", "type": "space"},
        {"name": "x", "type": "space"}]


def multiscale(datasets, axes=AXES, shared=None) -> dict:
    entry = {"version": "0.4", "axes": axes, "datasets": datasets}
    if shared is not None:
        entry["coordinateTransformations"] = shared
    return entry


def scale_translation(scale, translation=None) -> list:
    transforms = [{"type": "scale", "scale": scale}]
    if translation is not None:
        transforms.append({"type": "translation", "translation": translation})
    return transforms


def test_gunpowder_attributes():
    metadata = gunpowder_metadata({"resolution": [40, 4, 4], "offset": [400, 8.0, 0]})
    assert metadata == SpatialMetadata(Coordinate(40, 4, 4), Coordinate(400, 8, 0), None)
    assert gunpowder_metadata({}) == SpatialMetadata()


def test_integer_coordinate_rejects_fractions_and_junk():
    assert integer_coordinate([4.0, 2], "resolution") == (4, 2)
    for bad in ([4.5, 2], "42", [float("nan")], [None, 1]):
        with pytest.raises(MetadataError):
            integer_coordinate(bad, "resolution")


def test_ome_ngff_04_picks_the_dataset_and_its_spatial_axes():
    attrs = {"multiscales": [multiscale([
        {"path": "s0", "coordinateTransformations": scale_translation(
            [1, 1, 8, 4, 4], [0, 0, 80, 40, 20])},
        {"path": "s1", "coordinateTransformations": scale_translation([1, 1, 16, 8, 8])},
    ])]}
    s0 = ome_ngff_metadata(attrs, "s0", 5)
    assert (s0.voxel_size, s0.offset) == ((8, 4, 4), (80, 40, 20))
    assert s0.spatial_axes == (False, False, True, True, True)
    s1 = ome_ngff_metadata(attrs, "s1", 5)
    assert (s1.voxel_size, s1.offset) == ((16, 8, 8), (0, 0, 0))
    assert ome_ngff_metadata(attrs, "s2", 5) == SpatialMetadata()


def test_ome_ngff_05_under_ome_with_shared_transforms():
    axes = AXES[2:]
    attrs = {"ome": {"version": "0.5", "multiscales": [multiscale(
        [{"path": "s0", "coordinateTransformations": scale_translation([2, 1, 1], [4, 2, 0])}],
        axes=axes,
        shared=scale_translation([2, 4, 4], [10, 0, 0]),
    )]}}
    metadata = ome_ngff_metadata(attrs, "s0", 3)
    # dataset transform first, then the shared one: x * s * g + (t * g + h)
    assert metadata.voxel_size == (4, 4, 4)
    assert metadata.offset == (4 * 2 + 10, 2 * 4, 0)
    assert metadata.spatial_axes == (True, True, True)


def test_ome_ngff_errors():
    with pytest.raises(MetadataError, match=r"3 axes for an array of 4"):
        ome_ngff_metadata({"multiscales": [multiscale([{"path": "s0"}], axes=AXES[2:])]},
                          "s0", 4)
    fractional = {"multiscales": [multiscale(
        [{"path": "s0", "coordinateTransformations": scale_translation([1, 1, 0.5, 1, 1])}])]}
    with pytest.raises(MetadataError, match=r"not integer"):
        ome_ngff_metadata(fractional, "s0", 5)
    by_reference = {"multiscales": [multiscale(
        [{"path": "s0", "coordinateTransformations": [{"type": "scale", "path": "x"}]}])]}
    with pytest.raises(MetadataError, match=r"unsupported"):
        ome_ngff_metadata(by_reference, "s0", 5)


def test_gunpowder_attributes_win_field_by_field():
    group = {"multiscales": [multiscale(
        [{"path": "raw", "coordinateTransformations": scale_translation([9, 9], [18, 18])}],
        axes=["y", "x"])]}
    metadata = read_spatial_metadata({"resolution": [2, 3]}, group, "raw", 2)
    assert metadata.voxel_size == (2, 3) and metadata.offset == (18, 18)
    assert read_spatial_metadata({}, {}, "raw", 2) == SpatialMetadata()


def test_attributes_that_are_not_ome_ngff_are_ignored():
    for attrs in ({"multiscales": "[{...}]"}, {"multiscales": [1, "x"]}, {"ome": "0.5"}):
        assert ome_ngff_metadata(attrs, "s0", 3) == SpatialMetadata()
