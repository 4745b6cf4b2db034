"""The private parts of Faust, mode and aiokafka that borderflow leans on are still where it expects them."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from streams.engine.seam import INSTANCE_ATTRIBUTES, PINNED, PRIVATE

ROOT = Path(__file__).resolve().parents[2]


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


def test_the_engine_uses_no_private_name_the_seam_does_not_list() -> None:
    """Private names of Faust or aiokafka imported anywhere in streams/ come through the seam."""
    offenders = []
    for path in (ROOT / "streams").rglob("*.py"):
        if path.name == "seam.py":
            continue
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith(("from faust", "from aiokafka", "from mode")) and " import _" in stripped:
                offenders.append(f"{path.relative_to(ROOT)}: {stripped}")
    assert not offenders
