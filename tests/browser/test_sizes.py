"""The upload box's script writes staged files' sizes as the pages do (apps/sizes.py)."""

import re

import pytest

from tests.jobs.test_sizes import SIZES
from tests.live import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_upload_script_writes_sizes_as_the_pages_do(browser):
    script = (ROOT / "static/js/upload.js").read_text()
    found = re.search(r"^  function formatSize\(bytes\) \{$.*?^  \}$", script, re.M | re.S)
    assert found, "formatSize is no longer in upload.js"
    page = browser.new_page()

    written = page.evaluate(
        f"sizes => sizes.map({found.group(0).strip()})", [size for size, _ in SIZES]
    )

    assert written == [words for _, words in SIZES]
