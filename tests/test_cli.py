"""The ``daskgp`` command: precompute and predict from pipeline files, killed and resumed,
locally and on a cluster; clear errors for bad pipeline files and outputs."""

import importlib.metadata
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import zarr
from scipy import ndimage

import daskgp as gp
from daskgp.cli import load_pipeline_file, main
from daskgp.precompute import COMPLETED, read_completed
from daskgp.seeds import derive_seed

DATA = Path(__file__).parent / "data"
PIPELINE_FILE = str(DATA / "precompute_pipeline.py")
PREDICT_FILE = str(DATA / "predict_pipeline.py")
KEYS = ("RAW", "LABELS")


@pytest.fixture
def quick(monkeypatch):
    """The test pipeline file without its sleep or log."""
    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    monkeypatch.delenv("DASKGP_TEST_LOG", raising=False)


def reference_batches(num_batches, seed):
    found = load_pipeline_file(PIPELINE_FILE)
    with gp.build(found["pipeline"], scheduler="sync", seed=seed) as p:
        return [p.request_batch(found["request"]) for _ in range(num_batches)]


def assert_matches_reference(path, num_batches, seed):
    root = zarr.open_group(path, mode="r")
    for i, batch in enumerate(reference_batches(num_batches, seed)):
        for name in KEYS:
            np.testing.assert_array_equal(root[name][i], batch[gp.ArrayKey(name)].data)


def chunk_files(path, index):
    """The files written for batch ``index``: one chunk per array and its completion mark."""
    files = [os.path.join(path, name, "c", str(index), "0", "0", "0") for name in KEYS]
    return [*files, os.path.join(path, COMPLETED, "c", str(index))]


def kill_when_complete(command, env, cwd, out, record, total, at_least):
    """Run ``command``, SIGKILL it once ``at_least`` of the ``total`` marks of the ``record``
    array in ``out`` are set, and return the marks then (fewer than ``total``)."""
    process = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    completed = np.zeros(total, bool)
    while completed.sum() < at_least and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        try:
            completed = zarr.open_array(out, path=record, mode="r")[:].astype(bool)
        except Exception:  # not created yet
            continue
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    completed = zarr.open_array(out, path=record, mode="r")[:].astype(bool)
    assert at_least <= completed.sum() < total, completed
    return completed


def test_precompute_writes_the_pipeline_files_batches(tmp_path, quick, capsys):
    out = str(tmp_path / "batches.zarr")
    status = main(["precompute", PIPELINE_FILE, "--num-batches", "5", "--out", out,
                   "--seed", "4", "--scheduler", "threads", "--batches-in-flight", "2"])
    assert status == 0
    captured = capsys.readouterr()
    assert f"wrote 5 batches to {out}" in captured.out and "5/5" in captured.err
    assert_matches_reference(out, 5, seed=4)


def test_precompute_on_a_cluster_with_address(tmp_path, quick, cluster_client):
    out = str(tmp_path / "batches.zarr")
    status = main(["precompute", PIPELINE_FILE, "--num-batches", "4", "--out", out,
                   "--seed", "2", "--address", cluster_client.scheduler.address,
                   "--no-progress"])
    assert status == 0
    assert_matches_reference(out, 4, seed=2)


def test_killed_run_resumes_to_the_same_bits_without_rewriting_finished_batches(
        tmp_path, monkeypatch, capsys):
    out, first_log, second_log = (str(tmp_path / name) for name in ("b.zarr", "log1", "log2"))
    num_batches, seed = 16, 5
    command = [sys.executable, "-m", "daskgp.cli", "precompute", PIPELINE_FILE,
               "--num-batches", str(num_batches), "--out", out, "--seed", str(seed),
               "--scheduler", "threads", "--batches-in-flight", "2", "--no-progress"]
    env = {**os.environ, "DASKGP_TEST_SLEEP": "0.15", "DASKGP_TEST_LOG": first_log}
    completed = kill_when_complete(command, env, tmp_path, out, COMPLETED, num_batches, 3)
    finished = [int(i) for i in np.flatnonzero(completed)]
    written = {file: os.stat(file).st_mtime_ns for i in finished for file in chunk_files(out, i)}

    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    monkeypatch.setenv("DASKGP_TEST_LOG", second_log)
    assert main(command[3:]) == 0  # the rerun, in this process
    assert f"({len(finished)} were already complete" in capsys.readouterr().out
    with open(second_log) as log:
        recomputed = sorted(int(line) for line in log)
    pending = sorted(derive_seed(seed, i) for i in range(num_batches) if i not in finished)
    assert recomputed == pending, "the rerun computes each unfinished batch once, no other"
    assert read_completed(out, num_batches).all()
    assert {file: os.stat(file).st_mtime_ns for file in written} == written
    monkeypatch.delenv("DASKGP_TEST_LOG")
    assert_matches_reference(out, num_batches, seed)


def expected_prediction():
    names = load_pipeline_file(PREDICT_FILE, names=("raw", "kernel"))
    return ndimage.convolve(names["raw"], names["kernel"], mode="constant")[1:-1, 2:-2, 1:-1]


def test_predict_writes_the_roi(tmp_path, quick, capsys):
    out = str(tmp_path / "prediction.zarr")
    status = main(["predict", PREDICT_FILE, "--out", out, "--roi", "20", "3", "5", "20", "10",
                   "12", "--scheduler", "threads"])
    assert status == 0
    captured = capsys.readouterr()
    assert f"wrote 8 tiles of PRED to {out}" in captured.out and "8/8" in captured.err
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  expected_prediction()[4:14, 4:14, 4:16])


def test_predict_on_a_cluster_with_address(tmp_path, quick, cluster_client):
    out = str(tmp_path / "prediction.zarr")
    status = main(["predict", PREDICT_FILE, "--out", out, "--address",
                   cluster_client.scheduler.address, "--no-progress"])
    assert status == 0
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  expected_prediction())


def test_killed_predict_resumes_without_rewriting_finished_tiles(tmp_path, monkeypatch,
                                                                  capsys):
    out, first_log, second_log = (str(tmp_path / name) for name in ("p.zarr", "log1", "log2"))
    command = [sys.executable, "-m", "daskgp.cli", "predict", PREDICT_FILE, "--out", out,
               "--scheduler", "threads", "--tiles-in-flight", "2", "--no-progress"]
    env = {**os.environ, "DASKGP_TEST_SLEEP": "0.1", "DASKGP_TEST_LOG": first_log}
    completed = kill_when_complete(command, env, tmp_path, out, "_completed_tiles", 27, 4)
    finished = [int(i) for i in np.flatnonzero(completed)]
    # Tile n (C order in the 3 x 3 x 3 grid) owns chunk "i.j.k" of PRED.
    chunks = [".".join(map(str, np.unravel_index(n, (3, 3, 3)))) for n in finished]
    # (The record's chunks hold the marks of many tiles: they are rewritten as tiles finish.)
    written = {file: os.stat(file).st_mtime_ns for file in
               [os.path.join(out, "PRED", c) for c in chunks]}

    monkeypatch.setenv("DASKGP_TEST_SLEEP", "0")
    monkeypatch.setenv("DASKGP_TEST_LOG", second_log)
    assert main(command[3:]) == 0  # the rerun, in this process
    assert f"({len(finished)} were already complete; 27 tiles)" in capsys.readouterr().out
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:],
                                  expected_prediction())
    assert {file: os.stat(file).st_mtime_ns for file in written} == written
    with open(second_log) as log:
        assert len(log.readlines()) == 27 - len(finished), "one model block per unfinished tile"


def test_pipeline_file_without_request_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "batches.zarr"
    pipeline_file = str(DATA / "missing_request_pipeline.py")
    status = main(["precompute", pipeline_file, "--num-batches", "2", "--out", str(out)])
    assert status == 1
    error = capsys.readouterr().err
    assert pipeline_file in error and "does not define `request`" in error
    assert not out.exists()


def test_missing_pipeline_file_is_a_clear_error(tmp_path, capsys):
    missing = str(tmp_path / "nope.py")
    status = main(["precompute", missing, "--num-batches", "2", "--out", str(tmp_path / "o")])
    assert status == 1
    assert f"pipeline file {missing} does not exist" in capsys.readouterr().err


def test_more_batches_grow_the_output_and_fewer_are_refused(tmp_path, quick, capsys):
    out = str(tmp_path / "batches.zarr")
    arguments = ["precompute", PIPELINE_FILE, "--out", out, "--scheduler", "sync",
                 "--no-progress", "--seed", "3"]
    assert main([*arguments, "--num-batches", "3"]) == 0
    mtimes = {file: os.stat(file).st_mtime_ns for i in range(3) for file in chunk_files(out, i)}
    assert main([*arguments, "--num-batches", "5"]) == 0
    assert "wrote 2 batches" in capsys.readouterr().out and read_completed(out, 5).all()
    assert {file: os.stat(file).st_mtime_ns for file in mtimes} == mtimes
    assert_matches_reference(out, 5, seed=3)
    stored = zarr.open_group(out, mode="r")["RAW"][:]
    assert main([*arguments, "--num-batches", "4"]) == 1
    error = capsys.readouterr().err
    assert out in error and "num_batches: stored 5, now 4" in error
    np.testing.assert_array_equal(zarr.open_group(out, mode="r")["RAW"][:], stored)


def test_scheduler_and_address_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["precompute", PIPELINE_FILE, "--num-batches", "1", "--out", "o",
              "--scheduler", "sync", "--address", "tcp://localhost:1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_unreachable_address_is_a_clear_error(tmp_path, capsys):
    with dask.config.set({"distributed.comm.timeouts.connect": "0.5s"}):
        status = main(["precompute", PIPELINE_FILE, "--num-batches", "1", "--out",
                       str(tmp_path / "o.zarr"), "--address", "tcp://127.0.0.1:9"])
    assert status == 1
    assert "cannot connect to the dask scheduler at tcp://127.0.0.1:9" in capsys.readouterr().err
    assert not (tmp_path / "o.zarr").exists()


def test_entry_point_is_daskgp_cli_main():
    (entry_point,) = importlib.metadata.entry_points(group="console_scripts", name="daskgp")
    assert entry_point.load() is main
