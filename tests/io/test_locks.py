"""Output locks: one job at a time; the holder is named; stale locks of dead processes are
taken over; another host's lock needs ``force``."""

import json
import os
import subprocess
import sys

import pytest

from daskgp.io.locks import LOCK_FILE, OutputLock, OutputLockedError, read_lock


def test_a_held_lock_refuses_a_second_job_naming_the_holder(tmp_path):
    out = str(tmp_path / "out.zarr")
    with OutputLock(out, "job-1", "daskgp predict a.py").acquire():
        holder = read_lock(out)
        assert (holder.job, holder.pid, holder.command) == ("job-1", os.getpid(),
                                                             "daskgp predict a.py")
        with pytest.raises(OutputLockedError) as error:
            OutputLock(out, "job-2", "daskgp predict b.py").acquire()
        assert f"pid {os.getpid()}" in str(error.value) and "daskgp predict a.py" in str(
            error.value)
        assert read_lock(out).job == "job-1", "the refused job left the record alone"
    assert read_lock(out) is None
    assert not os.path.exists(out), "the folder made for the lock alone is removed"


def write_record(out, **fields):
    os.makedirs(out, exist_ok=True)
    record = {"job": "old", "host": "elsewhere", "pid": 1, "process_start": None,
              "command": "daskgp precompute x.py", "started": 0.0, "heartbeat": 0.0, **fields}
    with open(os.path.join(out, LOCK_FILE), "w") as lock:
        json.dump(record, lock)


def test_the_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    import socket

    out = str(tmp_path / "out.zarr")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_record(out, host=socket.gethostname(), pid=dead.pid)
    with OutputLock(out, "new", "daskgp predict").acquire():
        assert read_lock(out).job == "new"
    assert "taking over the stale lock" in caplog.text and f"pid {dead.pid}" in caplog.text


def test_another_hosts_lock_needs_force(tmp_path):
    out = str(tmp_path / "out.zarr")
    write_record(out)
    with pytest.raises(OutputLockedError, match=r"on host elsewhere .* rerun with --force"):
        OutputLock(out, "new", "daskgp predict").acquire()
    with OutputLock(out, "new", "daskgp predict").acquire(force=True):
        assert read_lock(out).job == "new"
