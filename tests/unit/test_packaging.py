"""The package builds without warnings: every subpackage and the JSON Schemas are in it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_builds_quietly_with_every_subpackage_and_the_schemas(tmp_path: Path) -> None:
    # from a copy of the tracked files: a build in place would leave build/ and egg-info in the project
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    source = tmp_path / "source"
    for name in tracked:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(source)],
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
    console = {
        "index.html",
        "console.js",
        "console.css",
        "vendor/uplot/uPlot.iife.min.js",
        "vendor/uplot/uPlot.min.css",
        "vendor/uplot/LICENSE",
    }
    assert {f"streams/web/static/{name}" for name in console} <= names
