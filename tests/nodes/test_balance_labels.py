"""BalanceLabels: equal to gunpowder 1.5.0 (mask, two masks, slabs, 3 classes), chunking-
invariant, one reduction in the graph, range errors at compute time."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import daskgp as gp
from tests.data.label_fixtures import case, run_case


def _factory(name):
    params = case(name)["params"]

    def make(keys):
        masks = [keys[m] for m in ("mask", "mask2") if m in keys]
        return gp.BalanceLabels(keys["labels"], keys["scales"], mask=masks, **params)
    return make


@pytest.mark.parametrize("chunks", [None, (7, 9, 11), (2, 40, 17)])
@pytest.mark.parametrize("name", ["balance_binary_mask", "balance_slab_three"])
def test_equals_gunpowder_for_any_chunking(name, chunks):
    outputs, expected = run_case(name, _factory(name), chunks=chunks)
    assert outputs["scales"].dtype == np.float32
    np.testing.assert_allclose(outputs["scales"], expected["scales"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(outputs["scales"], expected["scales"])
    assert len(np.unique(expected["scales"])) > 2


def test_lazy_with_one_reduction_and_range_errors_name_the_key():
    labels, scales = gp.ArrayKey("LABELS"), gp.ArrayKey("SCALES")
    data = da.from_array(np.array([0, 1, 1, 1, 2, 0], np.uint8), chunks=2)
    request = gp.BatchRequest(random_seed=0)
    request.add(scales, (6,))
    with gp.build(gp.ArraySource(labels, data) + gp.BalanceLabels(labels, scales),
                  scheduler="sync") as p:
        batch = p.request_lazy_batch(request)
        assert batch[scales].is_lazy
        layers = batch[scales].data.dask.layers
        assert sum(name.startswith("balance-labels-counts") for name in layers) == 1
        expected = r"BalanceLabels: LABELS.*\[0, num_classes=2\).*0 to 2"
        with pytest.raises(gp.PipelineRequestError, match=expected):
            batch.compute(scheduler="sync")
