"""Stdlib-only helpers shared by the benchmarks that run gunpowder in its own virtualenv:
CPU time, summaries, the gunpowder venv, and running a worker script in a subprocess."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUNPOWDER_VENV = HERE / ".gunpowder-venv"
GUNPOWDER_VERSION = "1.5.0"


def cpu_seconds(children: bool = False) -> float:
    """User + system CPU seconds of this process (all its threads), and of its waited-for
    children when ``children``."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += usage.ru_utime + usage.ru_stime
    return total


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def summary(values) -> dict:
    """Median, min and max."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _python_312() -> str:
    """A Python 3.12 interpreter (gunpowder 1.5.0 needs >= 3.12): pyenv's, else python3.12."""
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    candidates = sorted(Path(pyenv_root, "versions").glob("3.12.*/bin/python3"))
    if candidates:
        return str(candidates[-1])
    return "python3.12"


def ensure_gunpowder_venv() -> Path:
    """The python of gunpowder's own virtualenv.

    ``$DASKGP_GUNPOWDER_PYTHON`` names an existing one; otherwise benchmarks/.gunpowder-venv is
    created on first use with Python 3.12 and ``gunpowder==1.5.0``."""
    if os.environ.get("DASKGP_GUNPOWDER_PYTHON"):
        return Path(os.environ["DASKGP_GUNPOWDER_PYTHON"])
    python = GUNPOWDER_VENV / "bin" / "python"
    done = GUNPOWDER_VENV / ".installed"  # an interrupted creation is started again
    if not done.exists():
        print(f"creating {GUNPOWDER_VENV} with gunpowder=={GUNPOWDER_VERSION} ...", flush=True)
        subprocess.run([_python_312(), "-m", "venv", "--clear", str(GUNPOWDER_VENV)],
                       check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        f"gunpowder=={GUNPOWDER_VERSION}", "psutil"], check=True)
        done.touch()
    return python


def run_worker(python: str, script: str, engine: str, *args: str,
               timeout: float | None = None) -> dict:
    """Run ``script --worker engine *args`` with ``python``; return the JSON it prints last
    (``RuntimeError`` if it fails or runs past ``timeout`` seconds)."""
    # The benchmarks, then this checkout (not whatever daskgp is installed), then the rest.
    path = [str(HERE), str(HERE.parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
    try:
        output = subprocess.run([python, str(HERE / script), "--worker", engine, *args],
                                capture_output=True, text=True, env=env, cwd=str(HERE.parent),
                                timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"the {engine} worker ran past {timeout} s") from error
    if output.returncode != 0:
        raise RuntimeError(f"the {engine} worker failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])
