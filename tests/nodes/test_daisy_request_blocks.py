"""DaisyRequestBlocks under a real daisy scheduler: its workers pull blocks from
``daisy.Client()`` and write them, and the output equals the whole-volume prediction."""

import functools
from pathlib import Path

import numpy as np
import pytest
import zarr

import daskgp as gp
from daskgp.cli import load_pipeline_file

PIPELINE_FILE = Path(__file__).parent.parent / "data" / "predict_zarr_pipeline.py"


def predict_blocks(out, num_workers, log):
    """A daisy process function: the pipeline file's model over daisy's blocks."""
    names = load_pipeline_file(PIPELINE_FILE)
    raw, pred = gp.ArrayKey("RAW"), gp.ArrayKey("PRED")
    request = names["request"]

    def done(block, start, duration):
        with open(log, "a") as lines:
            lines.write(f"{block.block_id[1]} {duration >= 0}\n")

    pipeline = (names["pipeline"] + gp.ZarrWrite({pred: "PRED"}, store=out)
                + gp.DaisyRequestBlocks(request, {raw: "read_roi", pred: "write_roi"},
                                        num_workers=num_workers, block_done_callback=done))
    with gp.build(pipeline, scheduler="threads"):
        pipeline.request_batch(gp.BatchRequest())


@pytest.mark.parametrize("num_workers", [1, 2])
def test_blocks_from_a_daisy_scheduler_are_written(tmp_path, monkeypatch, num_workers):
    import daisy

    monkeypatch.chdir(tmp_path)  # daisy writes its worker logs to ./daisy_logs
    monkeypatch.setenv("DASKGP_TEST_RAW", str(tmp_path / "raw.zarr"))
    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    names = load_pipeline_file(PIPELINE_FILE, names=("write_raw", "expected_prediction",
                                                     "VOXEL_SIZE", "OFFSET", "CONTEXT"))
    names["write_raw"](str(tmp_path / "raw.zarr"))
    voxel_size, context = names["VOXEL_SIZE"], names["CONTEXT"] * names["VOXEL_SIZE"]
    expected = names["expected_prediction"]()
    # The output ROI in whole blocks of 8 voxels: 16 x 16 x 16 voxels of the prediction.
    block = gp.Coordinate(8, 8, 8) * voxel_size
    write_total = gp.Roi(names["OFFSET"] + context, gp.Coordinate(16, 16, 16) * voxel_size)
    out, log = str(tmp_path / "out.zarr"), str(tmp_path / "log")
    task = daisy.Task(
        "predict", total_roi=write_total.grow(context, context),
        read_roi=gp.Roi((0, 0, 0), block + context * 2), write_roi=gp.Roi(context, block),
        process_function=functools.partial(predict_blocks, out, num_workers, log),
        max_workers=1, read_write_conflict=False,
    )
    assert daisy.run_blockwise([task], progress=False, summary=False)
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:16, :16, :16],
                                  expected[:16, :16, :16])
    with open(log) as lines:
        done = [line.split() for line in lines]
    assert len(done) == 8 and len({block_id for block_id, _ in done}) == 8, "each block once"
    assert all(positive == "True" for _, positive in done)
