"""The README's snippet and its command-line lines run as written, on the shipped pipeline
files (``examples/``), in a fresh folder; their outputs are what the README says."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from matplotlib.image import imread
from ome_zarr_models.v04 import Image

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def code_block(after: str, language: str) -> str:
    """The first ``language`` code block of the README after the text ``after``."""
    start = README.index(after)
    match = re.search(rf"```{language}\n(.*?)```", README[start:], re.S)
    return match.group(1)


def cli_lines() -> list[list[str]]:
    lines = code_block("## Command line", "bash").splitlines()
    return [shlex.split(line, comments=True) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A fresh folder with the repository's ``examples/`` (the lines use relative paths)."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "examples").symlink_to(ROOT / "examples")
    return folder


def run(command: list[str], folder: Path) -> subprocess.CompletedProcess:
    if command[0] == "daskgp":  # the installed script, from this checkout
        command = [sys.executable, "-m", "daskgp.cli", *command[1:]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("DASKGP_CHECKPOINT", None)
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, f"{shlex.join(command)} failed:\n{result.stderr[-3000:]}"
    return result


def test_readme_command_lines_run_on_the_shipped_files(folder):
    lines = cli_lines()
    assert [line[1] for line in lines] == ["sample", "precompute", "show", "predict", "show"]
    for line in lines:
        run(line, folder)
    batches = zarr.open_group(str(folder / "batches.zarr"), mode="r")
    assert batches["RAW"].shape == (4, 84, 268, 268)
    assert np.asarray(batches["_completed"][...]).all()
    prediction = zarr.open_array(str(folder / "prediction.zarr"), path="volumes/prediction")
    assert prediction.shape[0] == 1, "one channel axis, no batch axis"
    Image.from_zarr(zarr.open_group(str(folder / "prediction.zarr/volumes"), mode="r"))
    values = np.asarray(prediction[...])
    assert 0 < values.min() < values.max() < 1, "a sigmoid output over the whole ROI"
    for png in ("batches.png", "prediction.png"):
        assert imread(str(folder / png))[..., :3].std() > 0.1


def test_readme_snippet_runs_on_the_sample(folder):
    if not (folder / "sample.zarr").exists():
        run(["daskgp", "sample", "sample.zarr"], folder)
    snippet = code_block("# daskgp", "python")
    check = ("\nassert batch[raw].data.shape == (84, 268, 268), batch[raw].data.shape"
             "\nassert batch[gt].data.shape == (56, 56, 56)"
             "\nassert 0 <= batch[raw].data.min() < batch[raw].data.max() <= 1"
             "\nprint('snippet ok')\n")
    result = run([sys.executable, "-c", snippet + check], folder)
    assert "snippet ok" in result.stdout
