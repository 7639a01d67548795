"""Pictures of batches: ``Batch._repr_html_``/``_repr_png_`` show every key's shape, dtype and
ROI and a mid-slice of each spatial array (labels coloured); batch ids count per build."""

import base64
import io

import dask.array as da
import numpy as np
from matplotlib.image import imread

import daskgp as gp
from daskgp.display import array_kind, array_panel, batch_panels, label_colours
from tests.helpers import array_source, position_data

RAW, GT, MASK = gp.ArrayKey("RAW"), gp.ArrayKey("GT"), gp.ArrayKey("MASK")


def pipeline():
    raw = position_data((10, 20, 20)).astype(np.float32)
    labels = (position_data((10, 20, 20)) // 7 % 5).astype(np.uint64)
    return (array_source(RAW, raw, voxel_size=(2, 1, 1)),
            array_source(GT, labels, voxel_size=(2, 1, 1)),
            array_source(MASK, (labels > 1).astype(np.uint8), voxel_size=(2, 1, 1))
            ) + gp.MergeProvider()


def request():
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (20, 20, 20)))
    for key in (GT, MASK):
        request[key] = gp.ArraySpec(roi=gp.Roi((6, 5, 5), (8, 10, 10)))
    return request


def png_pixels(png: bytes) -> np.ndarray:
    return imread(io.BytesIO(png), format="png")


def test_panels_slice_every_array_through_the_centre_their_rois_share():
    with gp.build(pipeline(), scheduler="sync", seed=0) as p:
        batch = p.request_batch(request())
    raw, gt, mask = batch_panels(batch)
    # the shared centre is z = 10 (world): raw's voxel 5, gt's voxel 2 (ROI begins at z=6)
    np.testing.assert_array_equal(raw.image, batch[RAW].data[5])
    np.testing.assert_array_equal(gt.image, batch[GT].data[2])
    assert (raw.kind, gt.kind, mask.kind) == ("image", "labels", "mask")
    assert raw.title == "RAW at z=10" and gt.title == "GT at z=10"
    assert raw.extent == (0.0, 20.0, 20.0, 0.0) and gt.extent == (5.0, 15.0, 15.0, 5.0)


def test_kinds_and_label_colours():
    assert array_kind(np.array([True, False]), None) == "mask"
    assert array_kind(np.array([0, 3, 9], np.uint64), False) == "labels"
    assert array_kind(np.array([0, 3, 200], np.uint8), True) == "image"
    assert array_kind(np.array([0.0, 0.5]), True) == "image"
    colours = label_colours(np.array([[0, 5, 5, 6]]))
    assert colours.shape == (1, 4, 3)
    np.testing.assert_array_equal(colours[0, 0], [0, 0, 0])
    np.testing.assert_array_equal(colours[0, 1], colours[0, 2])
    assert not np.allclose(colours[0, 1], colours[0, 3])


def test_a_lazy_array_computes_only_its_slice():
    computed = []

    def block(x, block_info=None):
        computed.append(block_info[None]["chunk-location"])
        return x

    data = da.zeros((8, 4, 4), chunks=(2, 4, 4), dtype=np.float32)
    data = data.map_blocks(block, dtype=np.float32)
    array = gp.Array(data, gp.ArraySpec(roi=gp.Roi((0, 0, 0), (8, 4, 4)), voxel_size=(1, 1, 1)))
    panel = array_panel("RAW", array)
    assert panel.image.shape == (4, 4)
    assert computed == [(2, 0, 0)], "only the chunk holding z=4 is computed"


def test_batch_renders_in_jupyter_as_html_and_png():
    with gp.build(pipeline(), scheduler="sync", seed=0) as p:
        lazy = p.request_lazy_batch(request())
        batch = p.request_batch(request())
    html = lazy._repr_html_()
    for text in ("RAW", "(10, 20, 20)", "float32", "GT", "uint64", "(4, 10, 10)", "[6:14, 5:15,",
                 "dask (lazy)", "data:image/png;base64,"):
        assert text in html
    assert "numpy" in batch._repr_html_()
    png = batch._repr_png_()
    assert png.startswith(b"\x89PNG")
    pixels = png_pixels(png)
    assert pixels[..., :3].std() > 0.1, "the picture is not blank"
    embedded = html.split("base64,")[1].split("'")[0]
    assert png_pixels(base64.b64decode(embedded)).shape == pixels.shape
    assert gp.Batch()._repr_png_() is None


def test_batch_ids_count_per_build_from_zero():
    for _ in range(2):
        with gp.build(pipeline() + gp.PreCache(cache_size=2, num_workers=1),
                      scheduler="threads", seed=0) as p:
            ids = [p.request_batch(request()).id for _ in range(3)]
            ids.append(p.request_lazy_batch(request()).compute(scheduler="sync").id)
        assert ids == [0, 1, 2, 3]
