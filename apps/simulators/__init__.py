"""Simulators of the removal providers, for `make run`, tests and benchmarks.

They are never imported by production code (`tests/jobs/test_simulator_isolation.py` checks):
only the management commands that run them, and tests.

What they share lives here: `http` (a threaded loopback server handing each request to a
simulator's `answer`), `config` (checking `/__sim__/config` changes) and `webhooks` (posting
callbacks off the request path). Each provider's own contract lives in its package (`kie`,
`replicate`).
"""
