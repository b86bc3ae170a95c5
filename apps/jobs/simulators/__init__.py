"""Simulators of the removal providers, for `make run`, tests and benchmarks.

They are never imported by production code (`tests/jobs/test_simulator_isolation.py` checks):
only the management commands that run them, and tests.
"""
