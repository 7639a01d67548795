"""The job identity's view of a pipeline: the pipeline file, the local modules it imports
(found by reading the imports, followed through local packages), never installed packages,
the standard library or daskgp; a changed local module changes the fingerprint."""

import os
import textwrap

import pytest

from daskgp.io.checksums import local_modules, pipeline_fingerprint


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def job(tmp_path, monkeypatch):
    """A pipeline file in ``job/`` with local modules beside it, in a package and in the
    current directory ``cwd/``."""
    folder, cwd = tmp_path / "job", tmp_path / "cwd"
    write(folder / "my_net.py", """
        import math
        import my_layers
        def UNet(): return my_layers.conv()
    """)
    write(folder / "my_layers.py", "import numpy\ndef conv(): return 1\n")
    write(folder / "nets" / "__init__.py", "from .blocks import Block\n")
    write(folder / "nets" / "blocks.py", "from . import util\nclass Block: pass\n")
    write(folder / "nets" / "util.py", "X = 1\n")
    write(folder / "nets" / "unused.py", "X = 2\n")
    write(folder / "unrelated.py", "X = 3\n")
    write(cwd / "from_cwd.py", "X = 4\n")
    pipeline = write(folder / "pipeline.py", """
        import os
        import numpy as np
        import daskgp as gp
        from my_net import UNet
        from nets import Block
        def later():
            import from_cwd
        pipeline = request = None
    """)
    monkeypatch.chdir(cwd)
    return pipeline


def test_local_modules_are_those_imported_from_the_folder_or_the_cwd(job):
    found = local_modules(job)
    folder = os.path.realpath(job.parent)
    cwd = os.path.realpath(os.getcwd())
    assert found == {
        "from_cwd": os.path.join(cwd, "from_cwd.py"),
        "my_layers": os.path.join(folder, "my_layers.py"),
        "my_net": os.path.join(folder, "my_net.py"),
        "nets": os.path.join(folder, "nets", "__init__.py"),
        "nets.blocks": os.path.join(folder, "nets", "blocks.py"),
        "nets.util": os.path.join(folder, "nets", "util.py"),
    }


def test_daskgp_is_never_a_local_module_even_from_its_own_checkout(tmp_path, monkeypatch):
    import daskgp

    checkout = os.path.dirname(os.path.dirname(daskgp.__file__))
    monkeypatch.chdir(checkout)  # ``import daskgp`` resolves here, from the cwd
    pipeline = write(tmp_path / "pipeline.py", "import daskgp as gp\nimport numpy\nimport os\n")
    assert local_modules(pipeline) == {}


def test_a_local_module_shadowing_an_installed_name_is_covered(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "job" / "scipy.py", "X = 1\n")  # imported instead of the installed one
    pipeline = write(tmp_path / "job" / "pipeline.py", "import scipy\nimport json\n")
    assert list(local_modules(pipeline)) == ["scipy"]


def test_the_fingerprint_covers_local_modules_and_only_them(job):
    first = pipeline_fingerprint(job)
    (job.parent / "unrelated.py").write_text("X = 30\n")
    (job.parent / "nets" / "unused.py").write_text("X = 20\n")
    assert pipeline_fingerprint(job) == first
    for module in ("my_layers.py", os.path.join("nets", "util.py")):
        file = job.parent / module
        text = file.read_text()
        file.write_text(text + "# edited\n")
        assert pipeline_fingerprint(job) != first, module
        file.write_text(text)
        assert pipeline_fingerprint(job) == first
    cwd_module = write(job.parent.parent / "cwd" / "from_cwd.py", "X = 40\n")
    assert pipeline_fingerprint(job) != first
    cwd_module.unlink()  # a module that is gone is no longer part of it
    assert pipeline_fingerprint(job) != first


def test_a_pipeline_file_without_local_modules_keeps_its_fingerprint(tmp_path, monkeypatch):
    import hashlib

    from daskgp.io.checksums import file_digest

    monkeypatch.chdir(tmp_path)
    pipeline = write(tmp_path / "pipeline.py", "import numpy\nimport daskgp\n")
    expected = hashlib.sha256(b"pipeline:" + file_digest(pipeline).encode()).hexdigest()
    assert pipeline_fingerprint(pipeline) == expected, "outputs written before stay valid"
