"""The private parts of Faust, mode and aiokafka that borderflow leans on are still where it expects them."""

from __future__ import annotations

import ast
import importlib
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from streams.engine import seam
from streams.engine.seam import INSTANCE_ATTRIBUTES, PINNED, PRIVATE

ROOT = Path(__file__).resolve().parents[2]
SEAM = ROOT / "streams" / "engine" / "seam.py"
THIRD_PARTY = ("faust", "mode", "aiokafka")
#: private names of the standard library that borderflow uses on purpose
STANDARD_LIBRARY = {(Path("streams/engine/checkpoint.py"), "_exit")}


def test_the_installed_releases_are_the_pinned_ones() -> None:
    """The seam is written against these; an upgrade starts by reading streams/engine/seam.py."""
    for package, pinned in PINNED.items():
        assert version(package) == pinned, package
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for package in ("faust-streaming", "aiokafka"):
        assert any(d.split("[")[0].split("==")[0] == package and d.endswith("==" + PINNED[package]) for d in declared), package


@pytest.mark.parametrize(("module", "owner", "name", "why", "test"), PRIVATE, ids=[f"{o}.{n}" for _, o, n, _, _ in PRIVATE])
def test_each_private_name_still_exists(module: str, owner: str, name: str, why: str, test: str) -> None:
    imported = importlib.import_module(module)
    if hasattr(imported, name):  # a module-level name (Faust's current-event context variable)
        return
    cls = getattr(imported, owner)
    found = hasattr(cls, name) or f"self.{name}" in inspect.getsource(cls)
    assert found, f"{module}.{owner}.{name} is gone: see streams/engine/seam.py"


@pytest.mark.parametrize(("module", "owner", "name"), INSTANCE_ATTRIBUTES, ids=[f"{o}.{n}" for _, o, n in INSTANCE_ATTRIBUTES])
def test_each_instance_attribute_is_still_set_by_its_class(module: str, owner: str, name: str) -> None:
    source = inspect.getsource(getattr(importlib.import_module(module), owner))
    assert f"self.{name}" in source, f"{module}.{owner} no longer sets {name}: see streams/engine/seam.py"


def test_each_entry_says_why_and_names_an_existing_test() -> None:
    for _module, _owner, name, why, test in PRIVATE:
        assert why, name
        first = test.split(",")[0].split(" (")[0]
        assert first == "every integration test" or (ROOT / first).exists(), (name, test)


def test_no_module_but_the_seam_imports_a_private_name() -> None:
    """Private names of Faust, mode or aiokafka are imported in streams/engine/seam.py alone."""
    offenders = []
    for path in (ROOT / "streams").rglob("*.py"):
        if path == SEAM:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in THIRD_PARTY:
                offenders += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not offenders


def test_no_module_but_the_seam_touches_a_private_member() -> None:
    """Outside the seam, an underscore attribute is only ever ``self``'s own, and no class overrides a listed member."""
    listed = {name for _, _, name, _, _ in PRIVATE} | {name for _, _, name in INSTANCE_ATTRIBUTES}
    offenders = []
    for path in [*(ROOT / "streams").rglob("*.py"), *(ROOT / "cli").rglob("*.py")]:
        if path == SEAM:
            continue
        where = path.relative_to(ROOT)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")) and (where, node.attr) not in STANDARD_LIBRARY:
                    offenders.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in listed:
                offenders.append(f"{where}:{node.lineno}: def {node.name}")
    assert not offenders, "private members of Faust or aiokafka belong in streams/engine/seam.py"


def test_the_seam_uses_every_member_it_lists() -> None:
    """The table names what the seam touches: nothing listed is left unused there."""
    source = SEAM.read_text()
    for _module, _owner, name, _why, _test in PRIVATE:
        assert name in source.replace(f'"{name}"', ""), name
    for _module, _owner, name in INSTANCE_ATTRIBUTES:
        assert f".{name}" in source, name


def _held_back() -> set[str]:
    """Names the seam binds to a private object of Faust, mode or aiokafka (``from faust.streams import _current_event``)."""
    held = set()
    for node in ast.walk(ast.parse(SEAM.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in THIRD_PARTY:
            held |= {a.asname or a.name for a in node.names if a.name.startswith("_")}
    return held


def seam_use_offenses(source: str, where: str) -> list[str]:
    """How ``source`` takes from the seam what is not its public API: a private object, a member renamed, a name not exported.

    A renamed import (``from streams.engine.seam import current_event as _current_event``)
    hides private state behind a name of the importer's own, where the checks on
    underscore attributes above no longer see it.
    """
    exported, held = set(seam.__all__), _held_back()
    offenses = []
    seam_modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "streams.engine.seam":
            for alias in node.names:
                if alias.asname not in (None, alias.name):
                    offenses.append(f"{where}:{node.lineno}: {alias.name} imported as {alias.asname}")
                if alias.name in held or alias.name not in exported:
                    offenses.append(f"{where}:{node.lineno}: {alias.name} is not the seam's to give")
        elif isinstance(node, ast.ImportFrom) and node.module == "streams.engine":
            seam_modules |= {alias.asname or alias.name for alias in node.names if alias.name == "seam"}
        elif isinstance(node, ast.Import):
            seam_modules |= {alias.asname for alias in node.names if alias.name == "streams.engine.seam" and alias.asname}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in seam_modules:
            if node.attr in held or node.attr not in exported:
                offenses.append(f"{where}:{node.lineno}: seam.{node.attr} is not the seam's to give")
    return offenses


def test_no_module_takes_private_state_from_the_seam() -> None:
    """What the seam holds of Faust's privates stays in it: other modules use its exported functions and classes, by their names."""
    offenders = []
    for path in [*(ROOT / "streams").rglob("*.py"), *(ROOT / "cli").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        if path != SEAM and path != Path(__file__):
            offenders += seam_use_offenses(path.read_text(), str(path.relative_to(ROOT)))
    assert not offenders


@pytest.mark.parametrize(
    "source",
    [
        "from streams.engine.seam import current_event as _current_event",
        "from streams.engine.seam import table_event as make_event",
        "from streams.engine.seam import _current_event",
        "from streams.engine import seam\nseam._current_event.set(None)",
        "from streams.engine import seam as s\ns.aiokafka_fetcher",
    ],
)
def test_the_check_catches_private_state_taken_from_the_seam(source: str) -> None:
    assert seam_use_offenses(source, "example.py")


def test_the_check_lets_the_seams_api_through() -> None:
    source = "from streams.engine.seam import BatchingConsumer, table_event\nfrom streams.engine import seam\nseam.read_bare"
    assert not seam_use_offenses(source, "ok.py")
