"""Store gunpowder 1.5.0's results for ``shift_helper_cases.py``:

    /work/venvs/gp15/bin/python tests/data/make_shift_helper_fixtures.py

writes ``tests/data/shift_helper_fixtures.json``.
"""

import json
import pathlib
import sys

import gunpowder

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))

from shift_helper_cases import run_cases  # noqa: E402

if __name__ == "__main__":
    (HERE / "shift_helper_fixtures.json").write_text(json.dumps(run_cases(gunpowder)))
