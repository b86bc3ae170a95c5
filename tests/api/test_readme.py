"""The README's API examples, run as written against a live server: they cannot drift."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from apps.jobs.models import Job
from apps.removal.base import InputKind
from tests.api.conftest import GOOD_LINK, key_for
from tests.api.test_jobs_api import fund
from tests.clips import make_clip
from tests.live import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def readme_example(kind: str) -> str:
    """The code block right after `<!-- api-example: <kind> -->` in the README."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- api-example: {kind} -->\n```\w+\n(.*?)\n```", readme, re.DOTALL)
    assert found, f"the README has no {kind} API example"
    return found.group(1)


@pytest.fixture
def example_env(live_server, acme, alice, uploads_stack, tmp_path: Path) -> dict[str, str]:
    fund(acme, 100)
    return {
        **os.environ,
        "UNMARK_URL": live_server.url,
        "UNMARK_API_KEY": key_for(alice, acme),
        "VIDEO": str(make_clip(tmp_path / "clip.mp4")),
    }


def test_the_readme_curl_example_creates_a_job(example_env, acme):
    result = subprocess.run(
        ["sh", "-c", readme_example("curl")],
        env=example_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    [job] = Job.objects.filter(team=acme)
    assert job.source_url == GOOD_LINK
    assert f'"id": "{job.public_id}"' in result.stdout
    assert '"available": 90' in result.stdout


def test_the_readme_python_example_uploads_and_creates_a_job(example_env, acme):
    result = subprocess.run(
        [sys.executable, "-c", readme_example("python")],
        env=example_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    [job] = Job.objects.filter(team=acme)
    assert (job.input_kind, job.original_name) == (InputKind.FILE, "clip.mp4")
    assert result.stdout.startswith(f"{job.public_id} Waiting 0% ")
    assert "'available': 90" in result.stdout
