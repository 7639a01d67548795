"""The gunpowder compatibility table: every public gunpowder 1.5 name and daskgp's status.

Two steps, two interpreters:

1. ``/work/venvs/gp15/bin/python scripts/compat_table.py --dump`` introspects gunpowder
   1.5.0's ``gunpowder``, ``gunpowder.nodes``, ``gunpowder.tensorflow`` and
   ``gunpowder.torch`` namespaces (names, kinds, constructor and method signatures) into
   ``docs/gunpowder_namespace.json`` (committed).
2. ``python scripts/compat_table.py`` (daskgp's environment) compares daskgp's namespaces
   with that dump and writes ``docs/compatibility.md``; ``--check`` only says whether the
   committed table is current (``tests/test_compat_table.py`` runs it).

A name is **same** when it exists with the same parameters (names, order, kinds, defaults)
and the same public methods; **different** lists what differs; **missing** says why (or
which issue brings it). Names that exist only to refuse use with guidance set
``__daskgp_unsupported__`` and are listed as **refuses with guidance**.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import pathlib
import sys
import types

ROOT = pathlib.Path(__file__).resolve().parents[1]
DUMP = ROOT / "docs" / "gunpowder_namespace.json"
TABLE = ROOT / "docs" / "compatibility.md"
NAMESPACES = ["gunpowder", "gunpowder.nodes", "gunpowder.tensorflow", "gunpowder.torch"]

#: Why a gunpowder name is absent from daskgp (shown only while it is absent).
MISSING_REASONS = {
    **{name: "pending issue 9 (graphs)" for name in (
        "CsvPointsSource", "Edge", "GPGraphSource", "Graph", "GraphSource", "Node",
        "RasterizationSettings", "RasterizeGraph")},
    **{name: "pending issue 10 (label and sampling nodes)" for name in (
        "AddAffinities", "BalanceLabels", "DownSample", "ExcludeLabels", "GrowBoundary",
        "IterateLocations", "RandomProvider", "Reject", "RenumberConnectedComponents",
        "Resample", "SpecifiedLocation", "UpSample")},
    "DaisyRequestBlocks": "pending issue 14 (a daisy-driven DaisyRequestBlocks); meanwhile "
                          "daskgp runs block-wise jobs itself (`daskgp predict`/`precompute`, "
                          "`Scan`), see docs/gunpowder.md",
}
#: Why a present name differs (appended to its notes while it differs); a key is a name in
#: every namespace, or ``namespace.name`` for one namespace only.
WHY_DIFFERENT = {
    **{name: "daskgp's errors take a message; gunpowder's attributes (`provider`, "
             "`request`, `batch`, `original_traceback`) are set where known"
       for name in ("BatchRequestError", "PipelineRequestError", "PipelineSetupError",
                    "PipelineTeardownError")},
    "Array": "a spec is optional (filled from the data)",
    "build": "daskgp's scheduler, cluster and seed options",
    "ElasticAugment": "`chunk_shape` sets the warp's output chunks",
    "DeformAugment": "`chunk_shape` sets the warp's output chunks",
    "RandomLocation": "`p` and `max_attempts` bound the rejection sampling",
    "Hdf5Write": "`store` names the file directly, as ZarrWrite's",
    "ShiftAugment": "`shift_points` needs graphs (pending issue 9)",
    "gunpowder.tensorflow.Train": "TF2/Keras 3 (gunpowder's is TF1); a TF1 call is refused "
                                  "with what to pass",
    "gunpowder.tensorflow.Predict": "TF2/Keras 3 (gunpowder's is TF1); a TF1 call is refused "
                                    "with what to pass",
    "gunpowder.torch.Train": "gunpowder's worker internals (`start`, `train_step`, hook "
                             "helpers) are not daskgp API: the step runs in `process` on "
                             "arrays computed by dask; `gradients=None` requests none, as "
                             "gunpowder's `{}`",
    "gunpowder.torch.Predict": "gunpowder's worker internals (`start`, `predict`, hook "
                               "helpers) are not daskgp API: the forward pass runs in "
                               "`process` on arrays computed by dask",
}
PENDING_NAMESPACES = {"gunpowder.torch": "pending issue 12 (torch Train/Predict)"}


# --- introspection (runs under either library) --------------------------------------------

def _default(value) -> str | None:
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, type):
        return f"{value.__module__.split('.')[0]}.{value.__qualname__}"
    return repr(value)


def _signature(obj) -> list | None:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, _default(p.default)]
            for p in signature.parameters.values() if p.name != "self"]


def _methods(cls: type) -> dict:
    methods = {}
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            methods[name] = "property"
        elif isinstance(member, (staticmethod, classmethod)):
            methods[name] = _signature(member.__func__)
        elif inspect.isfunction(member):
            methods[name] = _signature(member)
    return methods


def _public(module) -> dict:
    names = {}
    for name in sorted(dir(module)):
        value = getattr(module, name)
        if name.startswith("_") or isinstance(value, types.ModuleType):
            continue
        if type(value).__name__ in ("Logger", "_Feature"):  # `logger`, `absolute_import`
            continue
        names[name] = value
    return names


def describe(value) -> dict:
    """Kind, signature and (for classes) public methods of ``value``."""
    if isinstance(value, type):
        init = value.__init__ if "__init__" in vars(value) or value.__init__ is not \
            object.__init__ else None
        return {"kind": "class", "signature": _signature(init) if init else [],
                "methods": _methods(value)}
    if callable(value):
        return {"kind": "function", "signature": _signature(value), "methods": {}}
    return {"kind": type(value).__name__, "signature": None, "methods": {}}


def dump() -> None:
    """Write gunpowder's namespaces to ``DUMP`` (run under gunpowder's interpreter)."""
    import gunpowder

    result = {"gunpowder_version": str(getattr(gunpowder, "version", None)), "namespaces": {}}
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        result["namespaces"][namespace] = {name: describe(value)
                                           for name, value in _public(module).items()}
    DUMP.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {DUMP.relative_to(ROOT)}")


# --- comparison (daskgp's environment) -----------------------------------------------------

def _format(signature: list | None) -> str:
    if signature is None:
        return "?"
    parts = []
    for name, kind, default in signature:
        prefix = {"VAR_POSITIONAL": "*", "VAR_KEYWORD": "**"}.get(kind, "")
        parts.append(prefix + name + ("" if default is None else f"={default}"))
    return "(" + ", ".join(parts) + ")"


def _same_default(ours: str | None, theirs: str | None) -> bool:
    if ours == theirs:
        return True
    try:  # 0 and 0.0, (1, 1) and (1.0, 1.0): the same default
        return ast.literal_eval(ours) == ast.literal_eval(theirs)
    except (ValueError, SyntaxError, TypeError):
        return False


def _shown(default: str | None) -> str:
    return "nothing (required)" if default is None else default


def _signature_differences(theirs: list | None, ours: list | None) -> list[str]:
    if theirs is None or ours is None or theirs == ours:
        return []
    their_names = [p[0] for p in theirs]
    our_names = [p[0] for p in ours]
    notes = []
    missing = [n for n in their_names if n not in our_names]
    extra = [p for p in ours if p[0] not in their_names]
    if missing:
        notes.append("lacks " + ", ".join(f"`{n}`" for n in missing))
    if extra:
        notes.append("adds " + ", ".join(f"`{p[0]}`" for p in extra))
    common = [n for n in their_names if n in our_names]
    if [n for n in our_names if n in common] != common:
        notes.append("another order")
    for name, kind, default in theirs:
        if name in our_names:
            _, our_kind, our_default = ours[our_names.index(name)]
            if not _same_default(our_default, default):
                notes.append(f"`{name}` defaults to {_shown(our_default)} "
                             f"(gunpowder: {_shown(default)})")
            elif our_kind != kind and "VAR" not in kind + our_kind:
                notes.append(f"`{name}` is {our_kind.lower()} (gunpowder: {kind.lower()})")
    return notes


def compare(entry: dict, value) -> tuple[str, str]:
    """(status, notes) of daskgp's ``value`` against gunpowder's ``entry``."""
    reason = getattr(value, "__daskgp_unsupported__", None)
    if reason:
        return "refuses with guidance", reason
    ours = describe(value)
    notes = _signature_differences(entry["signature"], ours["signature"])
    if notes:
        notes[0] = f"signature {_format(ours['signature'])}: " + notes[0]
    for method, signature in sorted(entry["methods"].items()):
        if not hasattr(value, method):
            notes.append(f"no `{method}`")
            continue
        if signature == "property":
            continue
        member = inspect.getattr_static(value, method)
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        diff = _signature_differences(signature, _signature(member))
        if diff:
            notes.append(f"`{method}` " + "; ".join(diff))
    return ("different" if notes else "same"), "; ".join(notes)


def _daskgp_namespace(namespace: str):
    """daskgp's module for ``namespace``, from the same source tree as ``daskgp`` itself (an
    editable install elsewhere can otherwise supply subpackages this tree lacks)."""
    import daskgp

    name = "daskgp" + namespace[len("gunpowder"):]
    try:
        module = importlib.import_module(name)
    except ImportError:
        return None
    tree = pathlib.Path(daskgp.__file__).resolve().parent
    if not pathlib.Path(module.__file__).resolve().is_relative_to(tree):
        return None
    return module


def rows() -> dict[str, list[tuple[str, str, str, str]]]:
    """Per gunpowder namespace: (name, kind, status, notes) for each of its names."""
    gunpowder = json.loads(DUMP.read_text())
    table = {}
    for namespace, names in gunpowder["namespaces"].items():
        module = _daskgp_namespace(namespace)
        entries = []
        for name, entry in sorted(names.items()):
            if module is not None and hasattr(module, name):
                status, notes = compare(entry, getattr(module, name))
                why = WHY_DIFFERENT.get(f"{namespace}.{name}", WHY_DIFFERENT.get(name))
                if status == "different" and why:
                    notes += f" (why: {why})"
            else:
                status = "missing"
                notes = MISSING_REASONS.get(name) or PENDING_NAMESPACES.get(namespace) or \
                    "not provided (no reason recorded)"
            entries.append((name, entry["kind"], status, notes))
        table[namespace] = entries
    return table


def counts(table) -> dict[str, dict[str, int]]:
    """Per namespace: how many names are same / different / refuses / missing."""
    result = {}
    for namespace, entries in table.items():
        tally = {"same": 0, "different": 0, "refuses with guidance": 0, "missing": 0}
        for _, _, status, _ in entries:
            tally[status] += 1
        result[namespace] = tally
    return result


README = ROOT / "README.md"
_COUNTS_BEGIN = "<!-- compat-counts (written by `python scripts/compat_table.py`) -->"
_COUNTS_END = "<!-- /compat-counts -->"


def _count_rows(table) -> list[str]:
    return [f"| `{namespace}` | {tally['same']} | {tally['different']} | "
            f"{tally['refuses with guidance']} | {tally['missing']} |"
            for namespace, tally in counts(table).items()]


def render_readme(readme: str) -> str:
    """``readme`` with the counts between its compat-counts markers brought up to date."""
    begin = readme.index(_COUNTS_BEGIN) + len(_COUNTS_BEGIN)
    end = readme.index(_COUNTS_END)
    block = ["", "| namespace | same | different | refuses with guidance | missing |",
             "|---|---|---|---|---|", *_count_rows(rows()), ""]
    return readme[:begin] + "\n".join(block) + readme[end:]


def render() -> str:
    """The text of ``docs/compatibility.md``."""
    table = rows()
    lines = [
        "# gunpowder 1.5 names in daskgp",
        "",
        "Generated by `scripts/compat_table.py` from gunpowder 1.5.0's namespaces "
        "(`docs/gunpowder_namespace.json`) and daskgp's code; do not edit by hand. "
        "`tests/test_compat_table.py` fails when it is out of date. Signatures compare "
        "parameter names, order, kinds and defaults; methods are the public ones a gunpowder "
        "class defines itself. Deliberate differences are explained in `docs/gunpowder.md`.",
        "",
        "| namespace | same | different | refuses with guidance | missing |",
        "|---|---|---|---|---|",
    ]
    lines += _count_rows(table)
    for namespace, entries in table.items():
        lines += ["", f"## `{namespace}`", "", "| name | kind | status | notes |",
                  "|---|---|---|---|"]
        for name, kind, status, notes in entries:
            lines.append(f"| `{name}` | {kind} | {status} | {notes.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", action="store_true",
                        help="introspect gunpowder (run with gunpowder's interpreter)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/compatibility.md is not current")
    args = parser.parse_args(argv)
    if args.dump:
        dump()
        return 0
    text = render()
    readme = render_readme(README.read_text())
    if args.check:
        current = TABLE.exists() and TABLE.read_text() == text and README.read_text() == readme
        print("docs/compatibility.md and README's counts are " + (
            "current" if current else "out of date: run python scripts/compat_table.py"))
        return 0 if current else 1
    TABLE.write_text(text)
    README.write_text(readme)
    for namespace, tally in counts(rows()).items():
        print(namespace, tally)
    return 0


if __name__ == "__main__":
    sys.exit(main())
