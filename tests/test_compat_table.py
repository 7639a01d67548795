"""The committed compatibility table is what scripts/compat_table.py generates from the code."""

import importlib.util
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("compat_table", ROOT / "scripts" / "compat_table.py")
compat_table = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat_table)


def test_committed_table_is_current():
    assert (ROOT / "docs" / "compatibility.md").read_text() == compat_table.render(), \
        "docs/compatibility.md is out of date: run python scripts/compat_table.py"


def test_readme_counts_are_current():
    readme = (ROOT / "README.md").read_text()
    assert readme == compat_table.render_readme(readme), \
        "README's compatibility counts are out of date: run python scripts/compat_table.py"


def test_table_lists_every_gunpowder_name_once():
    dumped = json.loads((ROOT / "docs" / "gunpowder_namespace.json").read_text())
    table = compat_table.rows()
    for namespace, names in dumped["namespaces"].items():
        assert [row[0] for row in table[namespace]] == sorted(names)
    assert len(dumped["namespaces"]["gunpowder"]) > 60


def test_statuses_follow_the_code():
    table = {row[0]: row for row in compat_table.rows()["gunpowder"]}
    assert table["Squeeze"][2] == "same"
    assert table["Pad"][2] == "same", "Pad takes gunpowder's positional order"
    status, notes = table["RandomLocation"][2:]
    assert status == "different" and "adds `p`, `max_attempts`" in notes
    assert all(row[3] for row in table.values() if row[2] == "missing"), "every gap says why"


def test_no_name_is_missing_and_refusals_are_classified():
    table = compat_table.rows()
    for namespace in table:
        missing = [row[0] for row in table[namespace] if row[2] == "missing"]
        assert missing == [], f"{namespace}: {missing} are missing"
    statuses = {(namespace, row[0]): row[2] for namespace, rows in table.items()
                for row in rows}
    for name in ("DvidSource", "KlbSource", "ProducerPool"):
        assert statuses[("gunpowder", name)] == "refuses with guidance"
    assert statuses[("gunpowder.tensorflow", "LocalServer")] == "refuses with guidance"
    for name in ("GPArraySource", "ScanCallback", "BatchFilter", "BatchProvider"):
        assert statuses[("gunpowder.nodes", name)] == "same"
    torch_train = {row[0]: row[3] for row in table["gunpowder.torch"]}["Train"]
    assert "TF1" not in torch_train, "the TF reason is not given for torch's Train"
