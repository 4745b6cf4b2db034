"""The worker assembled: its Faust app built from the engine, the web side and the broker workarounds, and its process.

The composition root, above every layer it puts together: nothing below it
imports it (an import-linter contract in pyproject.toml).
"""
