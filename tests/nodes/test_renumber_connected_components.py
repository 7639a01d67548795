"""RenumberConnectedComponents: one id per face-connected region of equal labels, numbered by
first voxel, background kept, chunking-invariant, one task."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

import daskgp as gp
from tests.data.label_fixtures import input_array

LABELS = gp.ArrayKey("LABELS")


def _run(data, chunks=None, lazy=False):
    source = gp.ArraySource(LABELS, da.from_array(data, chunks=chunks or -1))
    request = gp.BatchRequest(random_seed=0)
    request.add(LABELS, data.shape)
    with gp.build(source + gp.RenumberConnectedComponents(LABELS), scheduler="sync") as p:
        batch = p.request_lazy_batch(request) if lazy else p.request_batch(request)
    return batch[LABELS]


def test_components_of_the_fixture_labels_match_scipy_per_label():
    labels = input_array("labels")
    # Split one object in two by a background wall.
    labels[:, 20, :] = 0
    result = _run(labels).data
    assert result.dtype == labels.dtype
    np.testing.assert_array_equal(result == 0, labels == 0)
    expected = 0
    for value in np.unique(labels[labels > 0]):
        found, n = ndimage.label(labels == value)
        expected += n
        for component in range(1, n + 1):
            # Each component of each label is exactly one new id.
            assert len(np.unique(result[found == component])) == 1
    ids = np.unique(result[result > 0])
    np.testing.assert_array_equal(ids, np.arange(1, expected + 1))
    # Numbered by first voxel in C order.
    firsts = [np.flatnonzero(result.ravel() == i)[0] for i in ids]
    assert firsts == sorted(firsts)


def test_same_result_for_any_chunking_and_one_task_for_the_batch():
    labels = input_array("labels")
    np.testing.assert_array_equal(_run(labels).data, _run(labels, chunks=(7, 9, 11)).data)
    lazy = _run(labels, chunks=(7, 9, 11), lazy=True)
    assert lazy.is_lazy and lazy.data.numblocks == (1, 1, 1)
    layer = next(n for n in lazy.data.dask.layers if n.startswith("renumber-connected"))
    assert len(lazy.data.dask.layers[layer]) == 1


def test_no_background_and_too_many_components_for_the_dtype():
    np.testing.assert_array_equal(_run(np.array([[3, 3], [4, 3]], np.uint8)).data,
                                  [[1, 1], [2, 1]])
    checkerboard = (np.indices((20, 20)).sum(axis=0) % 2 + 1).astype(np.uint8)
    with pytest.raises(gp.PipelineRequestError, match=r"400 connected components.*uint8"):
        _run(checkerboard)
