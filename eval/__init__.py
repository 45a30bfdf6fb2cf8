"""Benchmarks and the comparison: scripts run from the repository root as ``python -m eval.<name>``.

Each script prints its figures and saves them under ``eval/results/`` (current figures) or
``eval/notebook/`` (screening runs); ``eval/experiments.py`` is the comparison's table of experiments.
"""
