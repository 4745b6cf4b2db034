"""The package builds without warnings: every subpackage and the JSON Schemas are in it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_quietly_with_every_subpackage_and_the_schemas(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert "absent from the `packages` configuration" not in built.stderr + built.stdout
    assert "Warning" not in built.stderr, built.stderr
    [wheel] = tmp_path.glob("borderflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    layers = ("core", "engine", "web", "kafka", "broker", "tools")
    for package in ("events", "streams", "cli", *(f"streams/{layer}" for layer in layers)):
        assert f"{package}/__init__.py" in names, package
    assert {"events/schema/crossing.json", "events/schema/departure.json", "events/schema/statement.json"} <= names
