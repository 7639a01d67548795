"""OME-NGFF validity of what daskgp writes: ``Snapshot`` and ``predict`` outputs pass the OME
community's validator (ome-zarr-models, OME-NGFF 0.4), without the model's singleton batch
axis and with one channel axis at most."""

import logging

import numpy as np
import pytest
import zarr
from ome_zarr_models.v04 import Image

import daskgp as gp
from daskgp.io.metadata import ome_ngff_axes, ome_ngff_group_attrs, ome_ngff_shape
from daskgp.predict import predict
from tests.helpers import array_source, position_data

RAW, GT, PRED = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("PRED")
STACKED = gp.ArrayKey("STACKED")


def validated_paths(path, group):
    """The array paths of ``group``'s multiscales, after ome-zarr-models validated it."""
    image = Image.from_zarr(zarr.open_group(f"{path}/{group}", mode="r"))
    return image.attributes.get_array_paths()


def test_shape_drops_only_leading_singletons_beyond_one_channel_axis():
    assert ome_ngff_shape((1, 1, 4, 5, 6), 3) == (1, 4, 5, 6)
    assert ome_ngff_shape((1, 1, 1, 4, 5), 2) == (1, 4, 5)
    assert ome_ngff_shape((1, 2, 4, 5, 6), 3) == (2, 4, 5, 6)
    assert ome_ngff_shape((2, 1, 4, 5, 6), 3) == (2, 1, 4, 5, 6)
    assert ome_ngff_shape((1, 4, 5, 6), 3) == (1, 4, 5, 6)
    assert ome_ngff_shape((4, 5, 6), 3) == (4, 5, 6)


def test_axes_have_at_most_one_channel_and_two_or_three_space_axes():
    assert ome_ngff_axes(3, 3) == [{"name": n, "type": "space"} for n in "zyx"]
    assert ome_ngff_axes(3, 2) == [{"name": "c", "type": "channel"},
                                   {"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    assert ome_ngff_axes(5, 3) is None
    assert ome_ngff_axes(4, 4) is None
    assert ome_ngff_group_attrs("volumes/labels", [], {"labels": ["x"]}) == {"multiscales": []}


class ModelLike(gp.BatchFilter):
    """A lazy "model": PRED is RAW / 2 in the (batch=1, channels=1, z, y, x) layout of a
    Keras output, and STACKED two batches of three channels (no OME-NGFF description)."""

    lazy = True

    def setup(self):
        spec = self.spec[RAW].copy()
        spec.dtype = np.dtype(np.float32)
        self.provides(PRED, spec)
        self.provides(STACKED, spec.copy())

    def prepare(self, request):
        deps = gp.BatchRequest()
        deps[RAW] = request[PRED].copy()
        return deps

    def process(self, batch, request):
        raw = batch[RAW].data.astype(np.float32)
        out = gp.Batch()
        for key, data in ((PRED, raw[None, None] / 2),
                          (STACKED, (raw[None, None] * np.ones((2, 3, 1, 1, 1), np.float32)))):
            spec = self.spec[key].copy()
            spec.roi = request[PRED].roi
            if key in request:
                out[key] = gp.Array(data, spec)
        return out


def test_snapshot_writes_valid_ome_ngff_without_the_batch_axis(tmp_path, caplog):
    raw = position_data((6, 8, 8)).astype(np.float32)
    source = (array_source(RAW, raw, voxel_size=(4, 2, 2), offset=(8, 4, 0)),
              array_source(GT, (raw % 7).astype(np.uint64), voxel_size=(4, 2, 2),
                           offset=(8, 4, 0))) + gp.MergeProvider()
    snapshot = gp.Snapshot({RAW: "volumes/raw", GT: "volumes/labels/neuron_ids",
                            PRED: "volumes/prediction", STACKED: "volumes/stacked"},
                           output_dir=str(tmp_path), every=1)
    request = gp.BatchRequest()
    for key in (RAW, GT, PRED, STACKED):
        request[key] = gp.ArraySpec(roi=gp.Roi((12, 6, 2), (16, 12, 12)))
    with caplog.at_level(logging.WARNING), \
            gp.build(source + ModelLike() + snapshot, scheduler="threads", seed=0) as p:
        batch = p.request_batch(request)
    path = tmp_path / "0.zarr"
    assert validated_paths(path, "volumes") == ["raw", "prediction"]
    assert validated_paths(path, "volumes/labels") == ["neuron_ids"]
    root = zarr.open_group(str(path), mode="r")
    assert batch[PRED].data.shape == (1, 1, 4, 6, 6), "the batch keeps the model's layout"
    assert root["volumes/prediction"].shape == (1, 4, 6, 6)
    np.testing.assert_array_equal(root["volumes/prediction"][0], batch[PRED].data[0, 0])
    # an array OME-NGFF cannot describe is written whole, without a multiscales entry
    np.testing.assert_array_equal(root["volumes/stacked"][...], batch[STACKED].data)
    assert "volumes/stacked" in caplog.text and "no OME-NGFF description" in caplog.text
    # and the prediction reads back at its place, with its channel axis
    source = gp.ZarrSource(str(path), {PRED: "volumes/prediction"})
    with gp.build(source, scheduler="sync") as p:
        assert source.spec[PRED].roi == batch[PRED].spec.roi
        only_pred = gp.BatchRequest()
        only_pred[PRED] = request[PRED].copy()
        back = p.request_batch(only_pred)
    np.testing.assert_array_equal(back[PRED].data, batch[PRED].data[0])


def test_predict_output_is_valid_ome_ngff_without_the_batch_axis(tmp_path):
    raw = position_data((12, 16, 16)).astype(np.float32)
    pipeline = array_source(RAW, raw, voxel_size=(2, 1, 1), offset=(0, 8, 0)) + ModelLike()
    reference = gp.BatchRequest()
    reference.add(RAW, (8, 8, 8))
    reference.add(PRED, (8, 8, 8))
    out = tmp_path / "prediction.zarr"
    summary = predict(pipeline, reference, out, outputs={PRED: "volumes/pred"},
                      scheduler="threads", progress=False)
    assert summary.written == summary.num_tiles == 3 * 2 * 2
    assert validated_paths(out, "volumes") == ["pred"]
    stored = zarr.open_array(str(out), path="volumes/pred", mode="r")
    assert stored.shape == (1, 12, 16, 16)
    np.testing.assert_array_equal(stored[0], raw / 2)
    (entry,) = zarr.open_group(str(out / "volumes"), mode="r").attrs["multiscales"]
    assert [axis["type"] for axis in entry["axes"]] == ["channel", "space", "space", "space"]
    assert entry["datasets"][0]["coordinateTransformations"][1]["translation"] == [0, 0, 8, 0]


@pytest.mark.parametrize("name", ["labels", "volumes/labels"])
def test_a_labels_group_inside_an_image_stays_valid(tmp_path, name):
    from daskgp.io.writers import write_arrays

    data = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parent = name.rpartition("/")[0]
    write_arrays(str(tmp_path / "a.zarr"), {f"{parent}/raw".strip("/"): (data, (1, 1, 1), (0,) * 3),
                                            f"{name}/ids": (data, (1, 1, 1), (0, 0, 0))})
    assert validated_paths(tmp_path / "a.zarr", parent or ".") == ["raw"]
    assert validated_paths(tmp_path / "a.zarr", name) == ["ids"]
