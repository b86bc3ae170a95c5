from collections.abc import Iterator

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.removal import balance
from apps.simulators.kie import KieSimulator, SimulatorConfig
from tests.factories import UserFactory


@pytest.fixture
def olive(db: None) -> User:
    """Unmark staff: runs the service, sees every team's figures."""
    return UserFactory.create(email="olive@unmark.example", is_staff=True)


@pytest.fixture
def staff_client(olive: User) -> Client:
    client = Client()
    client.force_login(olive)
    return client


@pytest.fixture
def kie_simulator(settings) -> Iterator[KieSimulator]:
    """A Kie simulator the app is pointed at, with a known balance."""
    simulator = KieSimulator(
        SimulatorConfig(api_key=settings.KIE_SIMULATOR_API_KEY, credits=123_450)
    ).start()
    settings.KIE_BASE_URL = simulator.url
    settings.KIE_API_KEY = settings.KIE_SIMULATOR_API_KEY
    balance.forget()
    yield simulator
    simulator.stop()
    balance.forget()
