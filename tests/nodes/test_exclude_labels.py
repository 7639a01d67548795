"""ExcludeLabels: equal to gunpowder 1.5.0 (with an ignore mask on anisotropic voxels),
chunking-invariant, large ids exact."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, run_case
from tests.helpers import array_source


@pytest.mark.parametrize("chunks", [None, (7, 9, 11), (20, 3, 40)])
@pytest.mark.parametrize("name", ["exclude", "exclude_no_mask_bg9"])
def test_equals_gunpowder_for_any_chunking(name, chunks):
    params = case(name)["params"]
    outputs, expected = run_case(
        name, lambda k: gp.ExcludeLabels(k["labels"], ignore_mask=k.get("ignore_mask"),
                                         **params), chunks=chunks)
    assert set(outputs) == set(expected)
    for key, value in expected.items():
        assert outputs[key].dtype == value.dtype
        np.testing.assert_array_equal(outputs[key], value, err_msg=key)
    if "ignore_mask" in expected:
        assert 0 < expected["ignore_mask"].mean() < 1


def test_ignore_mask_alone_requests_labels_and_no_included_voxel_gives_zeros():
    labels, mask = gp.ArrayKey("LABELS"), gp.ArrayKey("IGNORE")
    data = np.full((4, 6, 6), 2**60 + 1, np.uint64)
    node = gp.ExcludeLabels(labels, [2**60 + 1], ignore_mask=mask, ignore_mask_erode=2)
    request = gp.BatchRequest(random_seed=0)
    request.add(mask, (4, 6, 6))
    with gp.build(array_source(labels, data) + node, scheduler="sync") as p:
        assert p.spec[mask].dtype == np.uint8
        batch = p.request_batch(request)
    assert list(batch.keys()) == [mask]
    np.testing.assert_array_equal(batch[mask].data, 0)


def test_zero_erode_gives_an_all_zero_mask_like_gunpowder():
    labels, mask = gp.ArrayKey("LABELS"), gp.ArrayKey("IGNORE")
    data = np.arange(64, dtype=np.uint64).reshape(4, 4, 4)
    request = gp.BatchRequest(random_seed=0)
    request.add(labels, (4, 4, 4))
    request.add(mask, (4, 4, 4))
    node = gp.ExcludeLabels(labels, [3, 4], ignore_mask=mask)
    with gp.build(array_source(labels, data) + node, scheduler="sync") as p:
        batch = p.request_batch(request)
    np.testing.assert_array_equal(batch[mask].data, 0)
    assert (batch[labels].data == 0).sum() == 3


def test_requests_without_its_keys_pass_through():
    labels, raw = gp.ArrayKey("LABELS"), gp.ArrayKey("RAW")
    sources = (array_source(labels, np.ones((2, 2, 2), np.uint64)),
               array_source(raw, np.full((2, 2, 2), 3.0, np.float32))) + gp.MergeProvider()
    request = gp.BatchRequest(random_seed=0)
    request.add(raw, (2, 2, 2))
    with gp.build(sources + gp.ExcludeLabels(labels, [1]), scheduler="sync") as p:
        np.testing.assert_array_equal(p.request_batch(request)[raw].data, 3.0)
