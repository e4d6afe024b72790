"""Benchmarks of SCM Meterai (run the scripts directly, e.g. ``.venv/bin/python bench/stamps.py``)."""
