"""Runs in child processes of the local-CA race test: kept light, so spawning is quick."""

import time
from pathlib import Path

from apps.provenance import local_ca


def make_local_keys_slowly(folder: str, start, answers) -> None:
    # Every process makes its own pair before any of them is in place: the race is certain.
    make_pair = local_ca.make_pair

    def slow_pair() -> bytes:
        pair = make_pair()
        time.sleep(0.3)
        return pair

    local_ca.make_pair = slow_pair
    start.wait()
    answers.put(local_ca.local_signing_keys(Path(folder)))
