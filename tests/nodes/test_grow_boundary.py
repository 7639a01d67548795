"""GrowBoundary: equal to gunpowder 1.5.0 (2D, 3D, masks, only_xy), chunking-invariant, lazy."""

from __future__ import annotations

import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, run_case
from tests.helpers import array_source

CASES = {"grow_3d": (7, 9, 11), "grow_3d_mask": (5, 13, 8), "grow_mask_inner_roi": (7, 9, 11),
         "grow_only_xy": (4, 16, 9), "grow_2d_mask": (9, 13)}


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("name", CASES)
def test_equals_gunpowder_for_any_chunking(name, chunked):
    params = case(name)["params"]
    outputs, expected = run_case(
        name, lambda k: gp.GrowBoundary(k["labels"], mask=k.get("mask"), **params),
        chunks=CASES[name] if chunked else None)
    np.testing.assert_array_equal(outputs["labels"], expected["labels"])
    # Something grew: gunpowder's output differs from its input.
    source = case(name)["arrays"]["labels"]
    from tests.data.label_fixtures import input_array
    assert (expected["labels"] != input_array(source)).sum() > 50


def test_labels_keep_their_values_and_the_graph_is_lazy():
    labels = gp.ArrayKey("LABELS")
    data = np.repeat(np.arange(1, 6, dtype=np.uint64), 4)[None, :].repeat(3, axis=0)
    request = gp.BatchRequest(random_seed=0)
    request.add(labels, data.shape)
    with gp.build(array_source(labels, data, voxel_size=(1, 1), offset=(0, 0))
                  + gp.GrowBoundary(labels, steps=1), scheduler="sync") as p:
        batch = p.request_lazy_batch(request)
    assert batch[labels].is_lazy
    assert any(name.startswith("grow-boundary") for name in batch[labels].data.dask.layers)
    result = batch[labels].data.compute()
    assert set(np.unique(result)) <= set(np.unique(data)) | {0}
    np.testing.assert_array_equal(result[1], [1, 1, 1, 0, 0, 2, 2, 0, 0, 3, 3, 0, 0, 4, 4, 0,
                                              0, 5, 5, 5])


def test_bad_parameters_fail_clearly():
    labels = gp.ArrayKey("LABELS")
    with pytest.raises(gp.PipelineSetupError, match="steps=0 for LABELS"):
        gp.GrowBoundary(labels, steps=0)
    source = array_source(labels, np.zeros((4, 4), np.uint64), voxel_size=(1, 1),
                          offset=(0, 0))
    with pytest.raises(gp.PipelineSetupError, match="only_xy needs 3 spatial"):
        with gp.build(source + gp.GrowBoundary(labels, only_xy=True)):
            pass
