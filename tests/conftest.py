import os
from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.test import Client
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.responders import StaticFile

from apps.accounts.models import Role, Team, User
from tests.factories import UserFactory, add_member, make_team

# The running stack (provider simulators, the in-process worker, storage) and a provider's
# simulator, shared by every folder of tests that uses them.
pytest_plugins = ["tests.stack", "tests.replicate"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `@pytest.mark.postgres` tests need real row locks and concurrent connections.
    if connection.vendor != "postgresql":
        skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
        for item in items:
            if "postgres" in item.keywords:
                item.add_marker(skip)
    # Drills run real worker clusters for tens of seconds: once in CI, on the PostgreSQL and
    # Redis pass, where the broker and the database are separate (as in production).
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        skip = pytest.mark.skip(
            reason="a drill: needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL)"
        )
        for item in items:
            if "drill" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _static_files_indexed_once() -> Iterator[None]:
    """Every test `Client` builds the middleware chain afresh, and WhiteNoise's constructor
    stats and describes every static file the finders list (about a quarter of the CPU of a
    test that makes a request or two). The files do not change during a run, so each process
    builds that index once per static-file configuration and later middlewares reuse it (the
    entries are read-only: WhiteNoise shares them between requests too)."""
    index_of_finders = WhiteNoiseMiddleware.add_files_from_finders
    indexes: dict[tuple[object, ...], dict[str, StaticFile]] = {}

    def add_files_once(middleware: WhiteNoiseMiddleware) -> None:
        key = (
            middleware.static_prefix,
            middleware.max_age,
            middleware.allow_all_origins,
            middleware.charset,
            repr(settings.STATICFILES_DIRS),
            repr(settings.STATICFILES_FINDERS),
            repr(settings.STORAGES["staticfiles"]),
            tuple(settings.INSTALLED_APPS),
        )
        if key not in indexes:
            before = dict(middleware.files)
            index_of_finders(middleware)
            added = middleware.files.items()
            indexes[key] = {url: found for url, found in added if before.get(url) is not found}
        middleware.files.update(indexes[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(WhiteNoiseMiddleware, "add_files_from_finders", add_files_once)
        yield


@pytest.fixture(autouse=True)
def _fresh_cache(request: pytest.FixtureRequest) -> None:
    # Rate-limit counters and locks live in the cache (a database table without Redis):
    # every test that touches the database starts with none.
    wanted = [name for name in ("transactional_db", "db") if name in request.fixturenames]
    if wanted:
        request.getfixturevalue(wanted[0])
    if wanted or request.node.get_closest_marker("django_db"):
        cache.clear()


@pytest.fixture
def alice(db: None) -> User:
    """Owner of the Acme team (and of her personal team)."""
    return UserFactory.create(email="alice@example.com")


@pytest.fixture
def bob(db: None) -> User:
    """Admin of the Acme team."""
    return UserFactory.create(email="bob@example.com")


@pytest.fixture
def carol(db: None) -> User:
    """Plain member of the Acme team."""
    return UserFactory.create(email="carol@example.com")


@pytest.fixture
def charlie(db: None) -> User:
    """An outsider: has only his personal team."""
    return UserFactory.create(email="charlie@example.com")


@pytest.fixture
def acme(alice: User, bob: User, carol: User) -> Team:
    team = make_team("Acme", owner=alice)
    add_member(team, bob, Role.ADMIN)
    add_member(team, carol, Role.MEMBER)
    return team


@pytest.fixture
def login(db: None) -> Callable[[User], Client]:
    """`login(alice)` gives a test client signed in as Alice."""

    def signed_in(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return signed_in


@pytest.fixture
def files_provider(settings) -> None:
    """A provider that takes uploaded files is enabled: the SWC pool, with servers configured
    (nothing here sends a job to them)."""
    settings.SWC_SERVERS = [{"url": "http://127.0.0.1:9", "authorization": ""}]
