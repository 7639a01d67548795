"""BatchRecord: the precompute record walked and written a chunk at a time, holding only the
chunks of the batches in flight."""

import numpy as np
import zarr

from daskgp.io.batch_record import CHECKSUMS, COMPLETED, RECORD_CHUNK, BatchRecord, record_chunks

NUM_BATCHES = 3 * RECORD_CHUNK + 5


def make_record(path, marked=()):
    root = zarr.open_group(path, mode="w")
    completed = root.create_array(COMPLETED, shape=(NUM_BATCHES,), chunks=(RECORD_CHUNK,),
                                  dtype=np.uint8, fill_value=0)
    checksums = root.create_array(CHECKSUMS, shape=(NUM_BATCHES, 2), chunks=(RECORD_CHUNK, 2),
                                  dtype=np.uint32, fill_value=0)
    for index in marked:
        completed[index] = 1
        checksums[index] = (index, 7)


def test_pending_skips_marked_batches_and_holds_only_the_chunks_in_flight(tmp_path):
    path = str(tmp_path / "record.zarr")
    marked = [0, 5, RECORD_CHUNK + 1, NUM_BATCHES - 1]
    make_record(path, marked)
    record = BatchRecord(path, NUM_BATCHES)
    counted = []
    in_flight, held, seen = [], [], []
    for index in record.pending(on_complete=counted.append):
        seen.append(index)
        in_flight.append(index)
        if len(in_flight) == 3:  # a window of three batches
            done = in_flight.pop(0)
            record.mark(done, (done, 1))
            if done % 64 == 0:  # (a job flushes every FLUSH_S: marked chunks wait till then)
                record.flush()
        held.append(record.chunks_held)
    for done in in_flight:
        record.mark(done, (done, 1))
    record.flush()
    assert seen == [i for i in range(NUM_BATCHES) if i not in marked]
    assert sum(counted) == len(marked)
    assert max(held) <= 2, "the chunk walked and at most one behind it with batches in flight"
    assert record.chunks_held == 0
    stored = zarr.open_group(path, mode="r")
    assert stored[COMPLETED][:].all()
    checksums = stored[CHECKSUMS][:]
    np.testing.assert_array_equal(checksums[:, 0], np.arange(NUM_BATCHES))
    assert [checksums[i, 1] for i in marked] == [7] * len(marked), "old marks kept"
    assert (np.delete(checksums[:, 1], marked) == 1).all()


def test_pending_from_a_start_and_record_chunks_of_a_record_per_batch(tmp_path):
    path = str(tmp_path / "record.zarr")
    make_record(path, [RECORD_CHUNK + 2])
    record = BatchRecord(path, NUM_BATCHES)
    pending = record.pending(start=RECORD_CHUNK + 1)
    assert [next(pending) for _ in range(2)] == [RECORD_CHUNK + 1, RECORD_CHUNK + 3]
    # Layout 1 stored one chunk per batch: it is read RECORD_CHUNK batches at a time.
    old = str(tmp_path / "old.zarr")
    root = zarr.open_group(old, mode="w")
    root.create_array(COMPLETED, shape=(10,), chunks=(1,), dtype=np.uint8, fill_value=0)[3] = 1
    chunks = list(record_chunks(old, 12))
    assert len(chunks) == 1 and chunks[0][0] == 0 and chunks[0][2] is None
    assert np.flatnonzero(chunks[0][1]).tolist() == [3] and len(chunks[0][1]) == 12
