"""``daskgp.torch.dataset`` with real ``DataLoader``s: batches equal ``request_batch``'s, and
loader workers split the sequence without duplicates."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import daskgp as gp

from .models import RAW, TARGET, request, source


def pipeline():
    return source() + gp.RandomLocation() + gp.SimpleAugment(transpose_only=[1, 2])


def batch_request():
    return request(keys=(RAW, TARGET))


def expected_batches(n, seed):
    with gp.build(pipeline(), scheduler="sync", seed=seed) as p:
        return [p.request_batch(batch_request()) for _ in range(n)]


def test_element_i_is_batch_i_of_build():
    expected = expected_batches(5, seed=9)
    data = gp.torch.dataset(pipeline(), batch_request(), seed=9, num_batches=5,
                            scheduler="threads")
    got = list(data)
    assert len(data) == 5
    assert len(got) == 5
    for element, batch in zip(got, expected, strict=True):
        assert set(element) == {"RAW", "TARGET"}
        assert element["RAW"].dtype == torch.float32
        np.testing.assert_array_equal(element["RAW"].numpy(), batch[RAW].data)
        np.testing.assert_array_equal(element["TARGET"].numpy(), batch[TARGET].data)


def test_dataloader_stacks_batches():
    data = gp.torch.dataset(pipeline(), batch_request(), seed=3, num_batches=8)
    expected = expected_batches(8, seed=3)
    loaded = list(DataLoader(data, batch_size=4))
    assert [b["RAW"].shape for b in loaded] == [torch.Size((4, 8, 16, 16))] * 2
    np.testing.assert_array_equal(loaded[1]["RAW"][2].numpy(), expected[6][RAW].data)


def fingerprints(loader) -> list[bytes]:
    """One fingerprint per batch of the dataset (each loader batch unstacked)."""
    return [raw.numpy().tobytes() for batch in loader for raw in batch["RAW"]]


def test_two_loader_workers_split_the_sequence_without_duplicates():
    data = gp.torch.dataset(pipeline(), batch_request(), seed=5, num_batches=10,
                            scheduler="sync", cache_size=2, num_workers=1)
    alone = fingerprints(DataLoader(data, batch_size=4, num_workers=0))
    split = fingerprints(DataLoader(data, batch_size=4, num_workers=2))
    assert len(alone) == len(set(alone)) == 10, "ten distinct batches"
    assert sorted(split) == sorted(alone)
    # one by one the loader takes from its workers in turn: the very same order
    in_turn = fingerprints(DataLoader(data, batch_size=1, num_workers=2))
    assert in_turn == alone


def test_without_seed_torch_seeding_repeats_and_epochs_differ():
    data = gp.torch.dataset(pipeline(), batch_request(), num_batches=3, scheduler="sync")
    torch.manual_seed(0)
    first_epoch = fingerprints(DataLoader(data, batch_size=3))
    second_epoch = fingerprints(DataLoader(data, batch_size=3))
    torch.manual_seed(0)
    assert fingerprints(DataLoader(data, batch_size=3)) == first_epoch
    assert first_epoch != second_epoch


def test_endless_dataset_has_no_length_and_stops_cleanly():
    data = gp.torch.dataset(pipeline(), batch_request(), seed=1, scheduler="sync")
    with pytest.raises(TypeError, match="endless"):
        len(data)
    iterator = iter(data)
    first = [next(iterator)["RAW"] for _ in range(3)]
    iterator.close()
    expected = expected_batches(3, seed=1)
    for tensor, batch in zip(first, expected, strict=True):
        np.testing.assert_array_equal(tensor.numpy(), batch[RAW].data)


def test_bad_requests_are_refused():
    seeded = batch_request()
    seeded.random_seed = 3
    with pytest.raises(ValueError, match="must not carry a random_seed"):
        gp.torch.dataset(pipeline(), seeded)
    with pytest.raises(ValueError, match="holds no arrays"):
        gp.torch.dataset(pipeline(), gp.BatchRequest())
