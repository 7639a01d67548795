"""precompute: batch i is the pipeline's i-th batch, on every scheduler; reruns write nothing
twice; a mismatched output is refused and left untouched."""

import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import zarr

import daskgp as gp
from daskgp.io.batch_record import RECORD_CHUNK
from daskgp.io.checksums import data_checksum
from daskgp.precompute import CHECKSUMS, COMPLETED, precompute, read_completed
from daskgp.seeds import derive_seed
from tests.helpers import array_source, position_data

RAW = gp.ArrayKey("RAW")
LABELS = gp.ArrayKey("LABELS")
SEED = 7


class LogSeeds(gp.BatchFilter):
    """A numpy node that appends the seed of every batch it computes to ``log``."""

    def __init__(self, log=None):
        self.log = log

    def process(self, batch, request):
        if self.log:
            with open(self.log, "a") as log:
                log.write(f"{request.random_seed}\n")


def make_pipeline(log=None):
    raw = position_data((20, 20, 20))
    return (
        (array_source(RAW, raw, voxel_size=(2, 1, 1)),
         array_source(LABELS, (raw % 251).astype(np.uint8), voxel_size=(2, 1, 1)))
        + gp.MergeProvider() + gp.RandomLocation() + LogSeeds(log)
    )


def make_request(raw_shape=(8, 6, 6)):
    request = gp.BatchRequest()
    request.add(RAW, raw_shape)
    request.add(LABELS, (4, 4, 4))
    return request


def logged_seeds(log):
    if not os.path.exists(log):
        return []
    with open(log) as lines:
        return sorted(int(line) for line in lines)


def seeds_of(indices, seed=SEED):
    return sorted(derive_seed(seed, i) for i in indices)


def is_record(path, file):
    return os.path.relpath(file, path).split(os.sep)[0] in (COMPLETED, CHECKSUMS)


def file_states(path):
    """(mtime_ns, bytes) of every file under ``path``."""
    states = {}
    for folder, _, names in os.walk(path):
        for name in names:
            file = os.path.join(folder, name)
            with open(file, "rb") as content:
                states[file] = (os.stat(file).st_mtime_ns, content.read())
    return states


@pytest.fixture(scope="module")
def reference():
    """The first 6 batches of ``gp.build(pipeline, seed=SEED)``, computed synchronously."""
    with gp.build(make_pipeline(), scheduler="sync", seed=SEED) as p:
        return [p.request_batch(make_request()) for _ in range(6)]


def assert_stored_equal(path, reference):
    root = zarr.open_group(path, mode="r")
    for key in (RAW, LABELS):
        stored = root[key.identifier][:]
        assert stored.shape == (len(reference), *reference[0][key].data.shape)
        for i, batch in enumerate(reference):
            np.testing.assert_array_equal(stored[i], batch[key].data)


def test_batch_i_is_the_pipelines_ith_batch_on_every_scheduler(tmp_path, scheduler, reference):
    path = str(tmp_path / "batches.zarr")
    client = scheduler if not isinstance(scheduler, str) else None
    summary = precompute(make_pipeline(), make_request(), path, 6, seed=SEED,
                         scheduler=None if client else scheduler, client=client,
                         batches_in_flight=4, progress=False)
    assert (summary.written, summary.skipped, summary.seed) == (6, 0, SEED)
    assert_stored_equal(path, reference)
    assert not np.array_equal(reference[0][RAW].data, reference[1][RAW].data)
    assert read_completed(path, 6).all()


def test_layout_and_attributes(tmp_path, reference):
    path = str(tmp_path / "batches.zarr")
    precompute(make_pipeline(), make_request(), path, 3, seed=SEED, scheduler="sync",
               progress=False)
    root = zarr.open_group(path, mode="r")
    assert sorted(root.array_keys()) == ["LABELS", "RAW", CHECKSUMS, COMPLETED]
    raw, labels = root["RAW"], root["LABELS"]
    assert (raw.shape, raw.chunks, raw.dtype) == ((3, 4, 6, 6), (1, 4, 6, 6), np.int64)
    assert (labels.shape, labels.chunks, labels.dtype) == ((3, 2, 4, 4), (1, 2, 4, 4), np.uint8)
    # The record: a chunk holds the marks (and checksums) of RECORD_CHUNK batches.
    assert root[COMPLETED].chunks == (RECORD_CHUNK,) and root[COMPLETED][:].tolist() == [1] * 3
    assert root[CHECKSUMS].chunks == (RECORD_CHUNK, 2)
    assert root[CHECKSUMS].attrs["columns"] == ["RAW", "LABELS"]
    np.testing.assert_array_equal(root[CHECKSUMS][:], [
        [data_checksum(batch[RAW].data), data_checksum(batch[LABELS].data)]
        for batch in reference[:3]])
    roi = reference[0][LABELS].spec.roi
    assert labels.attrs["resolution"] == [2, 1, 1]
    assert labels.attrs["offset"] == list(roi.begin) == labels.attrs["roi_offset"]
    assert labels.attrs["roi_shape"] == [4, 4, 4]
    assert (labels.attrs["seed"], labels.attrs["num_batches"]) == (SEED, 3)
    assert raw.attrs["interpolatable"] is False and labels.attrs["interpolatable"] is True
    layout = root.attrs["daskgp_precompute"]
    assert (layout["num_batches"], layout["seed"], layout["version"]) == (3, SEED, 2)
    assert layout["arrays"]["RAW"]["dtype"] == np.dtype(np.int64).str


def test_rerun_of_a_complete_output_computes_and_writes_nothing(tmp_path):
    path, log = str(tmp_path / "batches.zarr"), str(tmp_path / "log")
    precompute(make_pipeline(log), make_request(), path, 4, seed=SEED, scheduler="threads",
               progress=False)
    assert logged_seeds(log) == seeds_of(range(4)), "each batch is computed exactly once"
    before = file_states(path)
    os.remove(log)
    summary = precompute(make_pipeline(log), make_request(), path, 4, scheduler="threads",
                         progress=False)
    assert (summary.written, summary.skipped, summary.seed) == (0, 4, SEED)
    assert logged_seeds(log) == []
    assert file_states(path) == before


def test_rerun_writes_only_unfinished_batches(tmp_path, reference):
    path, log = str(tmp_path / "batches.zarr"), str(tmp_path / "log")
    precompute(make_pipeline(), make_request(), path, 6, seed=SEED, scheduler="threads",
               progress=False)
    # Batches 1 and 4 as a killed run leaves them: data half written, no completion mark.
    root = zarr.open_group(path, mode="r+")
    for index in (1, 4):
        root["RAW"][index] = -1
        root[COMPLETED][index] = 0
    # (The record's chunk holds the marks of all six: it is rewritten as the two finish.)
    before = {file: state for file, state in file_states(path).items()
              if f"{os.sep}c{os.sep}1" not in file and f"{os.sep}c{os.sep}4" not in file
              and not is_record(path, file)}
    summary = precompute(make_pipeline(log), make_request(), path, 6, scheduler="processes",
                         progress=False)
    assert (summary.written, summary.skipped) == (2, 4)
    assert logged_seeds(log) == seeds_of([1, 4])
    assert_stored_equal(path, reference)
    after = file_states(path)
    assert {file: after[file] for file in before} == before, "finished batches were rewritten"


def test_progress_bar_counts_batches(tmp_path, capsys):
    path = str(tmp_path / "batches.zarr")
    precompute(make_pipeline(), make_request(), path, 5, seed=SEED, scheduler="sync",
               batches_in_flight=2)
    assert "5/5" in capsys.readouterr().err


@pytest.mark.parametrize("change", ["num_batches", "shape", "seed", "keys"])
def test_existing_output_that_differs_is_refused_and_left_untouched(tmp_path, change):
    path = str(tmp_path / "batches.zarr")
    precompute(make_pipeline(), make_request(), path, 3, seed=SEED, scheduler="sync",
               progress=False)
    before = file_states(path)
    num_batches, request, seed = 3, make_request(), SEED
    if change == "num_batches":
        num_batches, expected = 2, "num_batches: stored 3, now 2"
    elif change == "shape":
        request, expected = make_request((12, 6, 6)), "shape (4, 6, 6)"
    elif change == "seed":
        seed, expected = 8, "seed: stored 7, now 8"
    else:
        del request[LABELS]
        expected = "keys: stored ['LABELS', 'RAW'], now ['RAW']"
    with pytest.raises(gp.PipelineSetupError) as error:
        precompute(make_pipeline(), request, path, num_batches, seed=seed, scheduler="sync",
                   progress=False)
    assert path in str(error.value) and expected in str(error.value)
    assert "nothing was written" in str(error.value)
    assert file_states(path) == before


def test_path_that_is_not_a_precompute_output_is_refused(tmp_path):
    foreign = zarr.open_group(str(tmp_path / "foreign.zarr"), mode="w")
    foreign.create_array("RAW", shape=(2,), dtype=np.uint8)
    before = file_states(tmp_path / "foreign.zarr")
    with pytest.raises(gp.PipelineSetupError, match="not a precompute output"):
        precompute(make_pipeline(), make_request(), str(tmp_path / "foreign.zarr"), 2,
                   scheduler="sync", progress=False)
    assert file_states(tmp_path / "foreign.zarr") == before
    (tmp_path / "file.txt").write_text("hello")
    with pytest.raises(gp.PipelineSetupError, match="is not a zarr group"):
        precompute(make_pipeline(), make_request(), str(tmp_path / "file.txt"), 2,
                   scheduler="sync", progress=False)
    assert (tmp_path / "file.txt").read_text() == "hello"


def test_bad_arguments_are_clear_errors(tmp_path):
    path = str(tmp_path / "batches.zarr")
    with pytest.raises(gp.PipelineSetupError, match="num_batches must be >= 1"):
        precompute(make_pipeline(), make_request(), path, 0, progress=False)
    with pytest.raises(gp.PipelineSetupError, match="batches_in_flight must be >= 1"):
        precompute(make_pipeline(), make_request(), path, 2, batches_in_flight=0,
                   progress=False)
    assert not os.path.exists(path)


def test_pre_cache_in_the_pipeline_is_warned_about(tmp_path, caplog, reference):
    path = str(tmp_path / "batches.zarr")
    pipeline = make_pipeline() + gp.PreCache(cache_size=2, num_workers=1)
    precompute(pipeline, make_request(), path, 2, seed=SEED, scheduler="sync", progress=False)
    assert "contains a PreCache" in caplog.text
    assert_stored_equal(path, reference[:2])


def record_files(path):
    return sorted(os.path.relpath(os.path.join(folder, name), path)
                  for folder, _, names in os.walk(path) for name in names
                  if is_record(path, os.path.join(folder, name)) and name != "zarr.json")


def test_a_million_batches_start_at_once_and_resume_from_the_record_chunks(tmp_path):
    path = str(tmp_path / "batches.zarr")
    with gp.build(make_pipeline(), scheduler="sync", seed=SEED) as p:
        expected = [p.request_batch(make_request()) for _ in range(9)]
    summary = precompute(make_pipeline(), make_request(), path, 10**6, seed=SEED,
                         scheduler="threads", batches_in_flight=2, progress=False,
                         max_batches=6)
    assert (summary.written, summary.skipped) == (6, 0)
    assert summary.first_batch_s is not None and summary.first_batch_s <= summary.elapsed_s
    root = zarr.open_group(path, mode="r")
    assert root["RAW"].shape == (10**6, 4, 6, 6)
    # The record of six batches out of a million: one chunk of marks and one of checksums.
    assert record_files(path) == [os.path.join(CHECKSUMS, "c", "0", "0"),
                                  os.path.join(COMPLETED, "c", "0")]
    assert root[COMPLETED][:RECORD_CHUNK].tolist() == [1] * 6 + [0] * (RECORD_CHUNK - 6)
    summary = precompute(make_pipeline(), make_request(), path, 10**6, scheduler="processes",
                         batches_in_flight=2, progress=False, max_batches=3)
    assert (summary.written, summary.skipped, summary.seed) == (3, 6, SEED)
    assert root[COMPLETED][:10].tolist() == [1] * 9 + [0]
    for i, batch in enumerate(expected):
        for key in (RAW, LABELS):
            np.testing.assert_array_equal(root[key.identifier][i], batch[key].data)
        assert root[CHECKSUMS][i].tolist() == [data_checksum(batch[RAW].data),
                                               data_checksum(batch[LABELS].data)]


def as_layout_1(path):
    """Rewrite the record of output ``path`` as layout 1 stored it: one chunk per batch."""
    root = zarr.open_group(path, mode="r+")
    marks, sums = root[COMPLETED][:], root[CHECKSUMS][:]
    columns = root[CHECKSUMS].attrs["columns"]
    del root[COMPLETED], root[CHECKSUMS]
    root.create_array(COMPLETED, shape=marks.shape, chunks=(1,), dtype=np.uint8)[:] = marks
    root.create_array(CHECKSUMS, shape=sums.shape, chunks=(1, 2), dtype=np.uint32,
                      attributes={"columns": columns})[:] = sums
    root.attrs["daskgp_precompute"] = {**root.attrs["daskgp_precompute"], "version": 1}


def test_layout_1_outputs_are_read_and_verified_but_not_resumed(tmp_path, reference):
    from daskgp.verify import verify

    path = str(tmp_path / "batches.zarr")
    precompute(make_pipeline(), make_request(), path, 4, seed=SEED, scheduler="sync",
               progress=False)
    as_layout_1(path)
    with gp.build(gp.PrecomputedSource(path), scheduler="sync", seed=0) as p:
        served = [p.request_batch(make_request()) for _ in range(4)]
    for batch, expected in zip(served, reference, strict=False):
        np.testing.assert_array_equal(batch[RAW].data, expected[RAW].data)
    report = verify(path)
    assert (report.checked, report.unchecked, report.damaged) == (4, 0, [])
    zarr.open_array(path, path="RAW", mode="r+")[2] = 0  # damaged data, found by its checksum
    assert [line.split(":")[0] for line in verify(path).damaged] == ["batch 2"]
    before = file_states(path)
    with pytest.raises(gp.PipelineSetupError, match=r"older daskgp .*layout 1.* --overwrite"):
        precompute(make_pipeline(), make_request(), path, 6, scheduler="sync", progress=False)
    assert file_states(path) == before
    summary = precompute(make_pipeline(), make_request(), path, 4, seed=SEED,
                         scheduler="sync", progress=False, overwrite=True)
    assert summary.written == 4
    assert zarr.open_group(path, mode="r").attrs["daskgp_precompute"]["version"] == 2
    assert_stored_equal(path, reference[:4])


def test_an_unknown_layout_version_is_refused_naming_it(tmp_path):
    path = str(tmp_path / "batches.zarr")
    precompute(make_pipeline(), make_request(), path, 2, seed=SEED, scheduler="sync",
               progress=False)
    root = zarr.open_group(path, mode="r+")
    root.attrs["daskgp_precompute"] = {**root.attrs["daskgp_precompute"], "version": 9}
    with pytest.raises(gp.SourceError, match="unsupported precompute layout version 9"):
        with gp.build(gp.PrecomputedSource(path)):
            pass
    with pytest.raises(gp.PipelineSetupError, match=r"version 9 .*nothing was written"):
        precompute(make_pipeline(), make_request(), path, 2, scheduler="sync", progress=False)


DATA = Path(__file__).parent / "data"


@pytest.fixture
def fresh_imports(monkeypatch):
    """Pipeline files run in this process: their folders leave ``sys.path`` afterwards and
    their local modules are imported anew by the next run (as a new ``daskgp`` process
    would)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_rerun_after_editing_a_local_module_refuses_or_overwrites(tmp_path, fresh_imports,
                                                                  capsys):
    from daskgp.cli import main

    (tmp_path / "local_fill.py").write_text("FILL = 1\n")
    pipeline_file = tmp_path / "pipeline.py"
    pipeline_file.write_text(textwrap.dedent("""
        import numpy as np
        import daskgp as gp
        from local_fill import FILL

        RAW = gp.ArrayKey("RAW")
        spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), (10, 10, 10)), voxel_size=(1, 1, 1))
        pipeline = gp.ArraySource(RAW, np.full((10, 10, 10), FILL), spec) + gp.RandomLocation()
        request = gp.BatchRequest()
        request.add(RAW, (4, 4, 4))
    """))
    out = str(tmp_path / "batches.zarr")
    arguments = ["precompute", str(pipeline_file), "--num-batches", "3", "--out", out,
                 "--scheduler", "sync", "--no-progress"]
    assert main(arguments) == 0
    (tmp_path / "local_fill.py").write_text("FILL = 5\n")
    del sys.modules["local_fill"]
    before = file_states(out)
    capsys.readouterr()
    assert main(arguments) == 1
    error = capsys.readouterr().err
    assert out in error and "a local module it imports) changed" in error
    assert file_states(out) == before
    assert (zarr.open_array(out, path="RAW", mode="r")[:] == 1).all()
    del sys.modules["local_fill"]
    assert main([*arguments, "--overwrite"]) == 0
    assert (zarr.open_array(out, path="RAW", mode="r")[:] == 5).all()
    del sys.modules["local_fill"]
    assert main(arguments) == 0  # the new job resumes as itself
    assert "(3 were already complete" in capsys.readouterr().out


def test_predict_rerun_after_editing_the_model_module_refuses(tmp_path, fresh_imports,
                                                               monkeypatch, capsys):
    from daskgp.cli import load_pipeline_file, main

    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    monkeypatch.setenv("DASKGP_TEST_RAW", str(tmp_path / "raw.zarr"))
    template = (DATA / "predict_zarr_pipeline.py").read_text()
    assert "SCALE = 1.0\n" in template
    pipeline_file = tmp_path / "predict.py"
    pipeline_file.write_text(template.replace("SCALE = 1.0\n", "from model_scale import SCALE\n"))
    (tmp_path / "model_scale.py").write_text("SCALE = 1.0\n")
    names = load_pipeline_file(pipeline_file, names=("write_raw", "expected_prediction"))
    names["write_raw"](str(tmp_path / "raw.zarr"))
    out = str(tmp_path / "prediction.zarr")
    arguments = ["predict", str(pipeline_file), "--out", out, "--scheduler", "sync",
                 "--no-progress"]
    assert main(arguments) == 0
    (tmp_path / "model_scale.py").write_text("SCALE = 2.0\n")
    del sys.modules["model_scale"]
    capsys.readouterr()
    assert main(arguments) == 1
    assert "changed" in capsys.readouterr().err
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  names["expected_prediction"](1.0))
    del sys.modules["model_scale"]
    assert main([*arguments, "--overwrite"]) == 0
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  names["expected_prediction"](2.0))
