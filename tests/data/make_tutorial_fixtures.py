"""Store gunpowder 1.5.0's outputs for the users' nodes in ``tutorial_nodes.py``.

Run with gunpowder's interpreter from the repository root:

    /work/venvs/gp15/bin/python tests/data/make_tutorial_fixtures.py

writes ``tests/data/tutorial_fixtures.npz``.
"""

import pathlib
import sys

import gunpowder
import numpy as np

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))

from tutorial_nodes import run_cases  # noqa: E402

if __name__ == "__main__":
    outputs = run_cases(gunpowder)
    np.savez_compressed(HERE / "tutorial_fixtures.npz", **outputs)
    for name, data in outputs.items():
        print(f"{name}: {data.shape} {data.dtype}")
