from pathlib import Path

import pytest

from tests.clips import make_clip
from tests.provenance.helpers import remux_faststart, sign_like_sora


@pytest.fixture(autouse=True)
def _local_signing(settings, tmp_path_factory):
    """Signing on, with the local test CA (one per test process), whatever the environment
    running the tests configures."""
    settings.C2PA_SIGNING = True
    settings.C2PA_CERT_CHAIN = ""
    settings.C2PA_PRIVATE_KEY = ""
    settings.C2PA_TIMESTAMP_URL = ""
    settings.C2PA_TRUST_ANCHORS = ""
    settings.C2PA_LOCAL_DIR = tmp_path_factory.getbasetemp() / "c2pa"


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("clips")


@pytest.fixture(scope="session")
def original(clips) -> Path:
    """A person's upload: marked, with sound, no credentials of its own."""
    return make_clip(clips / "original.mp4", seconds=1, audio=True)


@pytest.fixture(scope="session")
def cleaned(clips) -> Path:
    """What a provider hands back: the same clip without the mark."""
    return make_clip(clips / "cleaned.mp4", seconds=1, audio=True, mark=False)


@pytest.fixture(scope="session")
def sora_original(original, clips) -> Path:
    """An original that carries its maker's Content Credentials."""
    return sign_like_sora(original, clips / "sora.mp4")


@pytest.fixture(scope="session")
def cleaned_faststart(cleaned, clips) -> Path:
    """The cleaned clip with its index first (how Sora and most encoders ship MP4s)."""
    return remux_faststart(cleaned, clips / "cleaned-faststart.mp4")
