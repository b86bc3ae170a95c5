from collections.abc import Iterator

import pytest

from tests.webhooks.receiver import Receiver, start_receiver


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    """A team's receiver on loopback, which only the explicit test setting lets through."""
    settings.WEBHOOK_ALLOW_LOOPBACK = True
    receiver = start_receiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
