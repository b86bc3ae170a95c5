import pytest


@pytest.fixture(autouse=True)
def _database_cache(db: None) -> None:
    """The create limiter counts in the cache, which is a database table without Redis."""
