"""``daskgp show`` draws snapshots, predictions and precomputed batches to a PNG that is not
blank; ``daskgp sample`` writes the EM-like sample and never replaces a file silently."""

import numpy as np
import pytest
import zarr
from matplotlib.image import imread

import daskgp as gp
from daskgp.cli import main
from daskgp.precompute import precompute
from daskgp.show import stored_rows
from tests.helpers import array_source, position_data

RAW, GT, PRED = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("PRED")


def pipeline():
    raw = (position_data((12, 24, 24)) % 251).astype(np.uint8)
    labels = (position_data((12, 24, 24)) // 6 % 9).astype(np.uint64)
    return (array_source(RAW, raw, voxel_size=(2, 1, 1)),
            array_source(GT, labels, voxel_size=(2, 1, 1))) + gp.MergeProvider()


def snapshot_file(folder, filename="{iteration}.zarr"):
    snapshot = gp.Snapshot({RAW: "volumes/raw", GT: "volumes/labels/neuron_ids"},
                           output_dir=str(folder), output_filename=filename, every=1)
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (24, 24, 24)))
    request[GT] = gp.ArraySpec(roi=gp.Roi((8, 6, 6), (8, 12, 12)))
    with gp.build(pipeline() + snapshot, scheduler="sync", seed=0) as p:
        batch = p.request_batch(request)
    return folder / filename.format(iteration=0), batch


def pixel_std(png):
    return imread(str(png))[..., :3].std()


@pytest.mark.parametrize("filename", ["{iteration}.zarr", "{iteration}.hdf"])
def test_show_draws_a_snapshot(tmp_path, filename, capsys):
    path, batch = snapshot_file(tmp_path, filename)
    ((_, (raw, labels)),) = stored_rows(path)
    assert (raw.kind, labels.kind) == ("image", "labels")
    np.testing.assert_array_equal(raw.image, batch[RAW].data[6])  # z = 12, the GT's centre
    np.testing.assert_array_equal(labels.image, batch[GT].data[2])
    out = tmp_path / "grid.png"
    assert main(["show", str(path), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert pixel_std(out) > 0.1, "the picture is not blank"


def test_show_draws_only_the_roi_asked_for(tmp_path):
    path, batch = snapshot_file(tmp_path)
    roi = gp.Roi((10, 8, 7), (4, 4, 3))  # x from 7 to 10: inside GT's voxels, not on them
    ((_, (raw, labels)),) = stored_rows(path, roi=roi)
    assert raw.extent == labels.extent == (7.0, 10.0, 12.0, 8.0)
    np.testing.assert_array_equal(raw.image, batch[RAW].data[6, 8:12, 7:10])
    np.testing.assert_array_equal(labels.image, batch[GT].data[2, 2:6, 1:4])
    with pytest.raises(gp.PipelineSetupError, match="intersects the ROI"):
        stored_rows(path, roi=gp.Roi((100, 0, 0), (2, 2, 2)))
    out = tmp_path / "roi.png"
    assert main(["show", str(path), "--roi", "10", "8", "7", "4", "4", "3", "--out",
                 str(out)]) == 0
    assert pixel_std(out) > 0.1


def test_show_draws_precomputed_batches_one_row_each(tmp_path):
    random_pipeline = pipeline() + gp.RandomLocation()
    request = gp.BatchRequest()
    request.add(RAW, (8, 10, 10))
    request.add(GT, (4, 6, 6))
    out = tmp_path / "batches.zarr"
    precompute(random_pipeline, request, out, 3, seed=1, scheduler="sync", progress=False)
    rows = stored_rows(out)
    assert [title for title, _ in rows] == [f"batches.zarr batch {i}" for i in range(3)]
    stored = zarr.open_group(str(out), mode="r")
    for i, (_, (raw, labels)) in enumerate(rows):
        np.testing.assert_array_equal(raw.image, stored["RAW"][i, 2])
        np.testing.assert_array_equal(labels.image, stored["GT"][i, 1])
    assert [t for t, _ in stored_rows(out, batches=[2])] == ["batches.zarr batch 2"]
    with pytest.raises(gp.PipelineSetupError, match=r"batch 5 of .* is not written"):
        stored_rows(out, batches=[5])
    assert main(["show", str(out), "--out", str(tmp_path / "b.png"), "--max-rows", "2"]) == 0
    assert pixel_std(tmp_path / "b.png") > 0.1


def test_show_reports_a_missing_or_empty_file(tmp_path, capsys):
    assert main(["show", str(tmp_path / "nothing.zarr"), "--out", str(tmp_path / "x.png")]) == 1
    assert "nothing.zarr does not exist" in capsys.readouterr().err
    zarr.open_group(str(tmp_path / "empty.zarr"), mode="w")
    assert main(["show", str(tmp_path / "empty.zarr"), "--out", str(tmp_path / "x.png")]) == 1
    assert "no array with two or more spatial axes" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_sample_writes_the_em_like_volume_and_refuses_to_replace_it(tmp_path, capsys):
    out = tmp_path / "sample.zarr"
    assert main(["sample", str(out), "--shape", "8", "32", "32"]) == 0
    root = zarr.open_group(str(out), mode="r")
    raw, ids = root["volumes/raw"][...], root["volumes/labels/neuron_ids"][...]
    assert raw.shape == ids.shape == (8, 32, 32) and root.metadata.zarr_format == 2
    assert raw.dtype == np.uint8 and ids.dtype == np.uint64 and len(np.unique(ids)) > 1
    # membranes are dark: raw is darker where the neuron id changes
    edges = np.zeros(ids.shape, bool)
    edges[:, :, 1:] = np.diff(ids.astype(np.int64), axis=2) != 0
    assert raw[edges].mean() < raw[~edges].mean() - 15
    before = raw.copy()
    assert main(["sample", str(out), "--seed", "3"]) == 1
    assert "exists; it was left untouched" in capsys.readouterr().err
    np.testing.assert_array_equal(zarr.open_array(str(out), path="volumes/raw")[...], before)
