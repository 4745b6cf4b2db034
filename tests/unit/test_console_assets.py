"""The console's files: the vendored chart library is the recorded one, and nothing loads or injects markup."""

from __future__ import annotations

import hashlib
import re

from streams.web.console import ASSETS, CONSOLE_DIR, SECURITY_HEADERS, UPLOT_VERSION

VENDORED = CONSOLE_DIR / "vendor" / "uplot" / "VENDORED.md"


def test_the_vendored_chart_library_is_the_recorded_release_with_its_licence() -> None:
    notes = VENDORED.read_text()
    assert f"uPlot {UPLOT_VERSION}" in notes
    for name in ("uPlot.iife.min.js", "uPlot.min.css"):
        digest = hashlib.sha256((CONSOLE_DIR / "vendor" / "uplot" / name).read_bytes()).hexdigest()
        assert f"`{name}`: {digest}" in notes, name
    assert "MIT License" in (CONSOLE_DIR / "vendor" / "uplot" / "LICENSE").read_text()


def test_every_asset_the_page_names_is_served_and_every_served_file_exists() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    named = set(re.findall(r'(?:src|href)="/console/([^"]+)"', page))
    assert named <= set(ASSETS), named - set(ASSETS)
    for file, _media in ASSETS.values():
        assert (CONSOLE_DIR / file).is_file(), file


def test_the_page_loads_nothing_from_elsewhere_and_has_no_inline_script() -> None:
    page = (CONSOLE_DIR / "index.html").read_text()
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page), "a CDN or another origin"
    assert all(body.strip() == "" for body in re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)), "inline script"
    assert not re.search(r"\son[a-z]+=", page), "inline event handler"
    policy = SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy and "default-src 'none'" in policy


def test_the_page_script_never_writes_markup_or_evaluates_strings() -> None:
    script = (CONSOLE_DIR / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", 'setTimeout("', "srcdoc"):
        assert sink not in script, sink
