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
    """The files written for batch ``index``: one chunk per array (its completion mark shares
    a record chunk with thousands of others, rewritten as they finish)."""
    return [os.path.join(path, name, "c", str(index), "0", "0", "0") for name in KEYS]


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


def test_max_batches_stops_early_and_a_rerun_continues(tmp_path, quick, capsys):
    out = str(tmp_path / "batches.zarr")
    arguments = ["precompute", PIPELINE_FILE, "--out", out, "--scheduler", "sync",
                 "--no-progress", "--seed", "3", "--num-batches", "5"]
    assert main([*arguments, "--max-batches", "2"]) == 0
    assert "wrote 2 batches" in capsys.readouterr().out
    assert read_completed(out, 5).tolist() == [True, True, False, False, False]
    assert main(arguments) == 0
    assert "wrote 3 batches" in capsys.readouterr().out and read_completed(out, 5).all()
    assert_matches_reference(out, 5, seed=3)


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


ZARR_PREDICT_FILE = DATA / "predict_zarr_pipeline.py"


def start_and_wait_for_lock(command, env, cwd, out):
    """Start ``command`` and return it once it holds the lock of ``out``."""
    from daskgp.io.locks import read_lock

    process = subprocess.Popen(command, env=env, cwd=cwd, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while read_lock(out) is None and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert read_lock(out) is not None, process.communicate()
    return process


def test_concurrent_precompute_runs_one_job_and_refuses_the_other(tmp_path, quick, capsys):
    out = str(tmp_path / "batches.zarr")
    command = [sys.executable, "-m", "daskgp.cli", "precompute", PIPELINE_FILE,
               "--num-batches", "8", "--out", out, "--seed", "3", "--scheduler", "threads",
               "--batches-in-flight", "2", "--no-progress"]
    first = start_and_wait_for_lock(command, {**os.environ, "DASKGP_TEST_SLEEP": "0.15"},
                                    tmp_path, out)
    second = [*command[3:]]
    second[second.index("--seed") + 1] = "4"
    assert main(second) == 1
    error = capsys.readouterr().err
    assert f"{out} is locked by another job: pid {first.pid} on host" in error
    assert "nothing was written" in error
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert "wrote 8 batches" in stdout
    assert_matches_reference(out, 8, seed=3)


def model_file(tmp_path, scale):
    """A copy of the zarr predict pipeline file whose model is scaled by ``scale``."""
    source = ZARR_PREDICT_FILE.read_text()
    path = tmp_path / f"model_{scale}.py"
    path.write_text(source.replace("SCALE = 1.0", f"SCALE = {scale}"))
    return str(path)


@pytest.fixture
def zarr_raw(tmp_path, monkeypatch):
    """The volume of the zarr predict pipeline file, and its expected predictions."""
    monkeypatch.setenv("DASKGP_TEST_RAW", str(tmp_path / "raw.zarr"))
    names = load_pipeline_file(ZARR_PREDICT_FILE, names=("write_raw", "expected_prediction"))
    names["write_raw"](str(tmp_path / "raw.zarr"))
    return names["expected_prediction"]


def test_concurrent_predict_with_another_model_is_refused(tmp_path, quick, zarr_raw, capsys):
    out = str(tmp_path / "prediction.zarr")
    command = [sys.executable, "-m", "daskgp.cli", "predict", model_file(tmp_path, 1.0),
               "--out", out, "--scheduler", "threads", "--tiles-in-flight", "2",
               "--no-progress"]
    first = start_and_wait_for_lock(command, {**os.environ, "DASKGP_TEST_SLEEP": "0.05"},
                                    tmp_path, out)
    assert main(["predict", model_file(tmp_path, 2.0), *command[5:]]) == 1
    assert f"is locked by another job: pid {first.pid}" in capsys.readouterr().err
    stdout, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr
    assert "wrote 27 tiles" in stdout
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:], zarr_raw(1.0))


def test_rerun_with_a_changed_model_refuses_or_overwrites(tmp_path, quick, zarr_raw, capsys):
    out = str(tmp_path / "prediction.zarr")
    pipeline_file = model_file(tmp_path, 1.0)
    arguments = ["predict", pipeline_file, "--out", out, "--scheduler", "threads",
                 "--no-progress"]
    assert main(arguments) == 0
    with open(pipeline_file) as source:
        changed = source.read().replace("SCALE = 1.0", "SCALE = 3.0")
    with open(pipeline_file, "w") as source:
        source.write(changed)
    capsys.readouterr()
    assert main(arguments) == 1
    error = capsys.readouterr().err
    assert "the pipeline (its file or model checkpoint) changed" in error and out in error
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:], zarr_raw(1.0))
    assert main([*arguments, "--overwrite"]) == 0
    assert "wrote 27 tiles" in capsys.readouterr().out
    np.testing.assert_array_equal(zarr.open_array(out, path="PRED", mode="r")[:], zarr_raw(3.0))
    assert main(arguments) == 0  # the new job resumes as itself
    assert "(27 were already complete" in capsys.readouterr().out


def test_a_checkpoint_named_in_the_pipeline_file_is_part_of_the_identity(tmp_path, quick,
                                                                        zarr_raw, capsys):
    out = str(tmp_path / "prediction.zarr")
    checkpoint = tmp_path / "model.ckpt"
    checkpoint.write_bytes(b"weights 1")
    pipeline_file = tmp_path / "with_checkpoint.py"
    pipeline_file.write_text(ZARR_PREDICT_FILE.read_text()
                             + f"\ncheckpoint = {str(checkpoint)!r}\n")
    arguments = ["predict", str(pipeline_file), "--out", out, "--scheduler", "sync",
                 "--no-progress"]
    assert main(arguments) == 0
    checkpoint.write_bytes(b"weights 2")
    assert main(arguments) == 1
    assert "changed" in capsys.readouterr().err


def test_sigkill_of_the_driver_leaves_no_worker_process(tmp_path):
    import psutil

    out = str(tmp_path / "batches.zarr")
    command = [sys.executable, "-m", "daskgp.cli", "precompute", PIPELINE_FILE,
               "--num-batches", "40", "--out", out, "--scheduler", "processes",
               "--batches-in-flight", "2", "--no-progress"]
    env = {**os.environ, "DASKGP_TEST_SLEEP": "0.3"}
    process = subprocess.Popen(command, env=env, cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if zarr.open_array(out, path=COMPLETED, mode="r")[:].any():
                break
        except Exception:  # not created yet
            pass
        time.sleep(0.05)
    children = psutil.Process(process.pid).children(recursive=True)
    assert children, "the processes scheduler started workers"
    process.send_signal(signal.SIGKILL)  # the driver only, not its process group
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for orphan in alive:
        orphan.kill()
    assert not alive, f"{len(alive)} worker processes outlived the driver by 10 s"


def test_verify_finds_damaged_tiles_and_batches(tmp_path, quick, zarr_raw, capsys):
    out = str(tmp_path / "prediction.zarr")
    assert main(["predict", str(ZARR_PREDICT_FILE), "--out", out, "--scheduler", "sync",
                 "--no-progress"]) == 0
    assert main(["verify", out, "--no-progress"]) == 0
    assert "27 tiles checked" in capsys.readouterr().out
    pred = zarr.open_array(out, path="PRED", mode="r+")
    pred[0:4, 8:16, 0:8] = 0  # changed data (as a truncated blosc chunk reads): tile (0, 1, 0)
    with open(os.path.join(out, "PRED", "2.2.2"), "wb") as chunk:
        chunk.write(b"garbage")  # an undecodable chunk: tile (2, 2, 2)
    assert main(["verify", out, "--no-progress"]) == 1
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("damaged")]
    assert len(lines) == 2
    assert "tile (0, 1, 0) (#3): dataset 'PRED'" in lines[0] and "differs" in lines[0]
    assert "tile (2, 2, 2) (#26)" in lines[1] and "PRED/2.2.2 unreadable" in lines[1]

    batches = str(tmp_path / "batches.zarr")
    assert main(["precompute", PIPELINE_FILE, "--num-batches", "3", "--out", batches,
                 "--scheduler", "sync", "--no-progress"]) == 0
    assert main(["verify", batches, "--no-progress"]) == 0
    os.remove(os.path.join(batches, "LABELS", "c", "1", "0", "0", "0"))
    assert main(["verify", batches, "--no-progress"]) == 1
    output = capsys.readouterr().out
    assert "damaged: batch 1: array 'LABELS': chunk(s) LABELS/c/1/0/0/0 missing" in output
