"""Sizes are written one way on every page, in the timeline and in refusals (apps/sizes.py)."""

import pytest
from django.template import Context, Template

from apps.sizes import file_size

# (bytes, words): also what static/js/upload.js writes (tests/browser/test_sizes.py).
SIZES = [
    (0, "0 bytes"),
    (1, "1 byte"),
    (812, "812 bytes"),
    (1024, "1 KB"),
    (10_752, "11 KB"),  # 10.5 KB: halves round up, in Python as in JavaScript
    (291_034, "284 KB"),
    (338_944, "331 KB"),
    (1_048_064, "1 MB"),  # 1,023.5 KB: not "1024 KB"
    (1_310_720, "1.3 MB"),  # 1.25 MB
    (1_500_000, "1.4 MB"),
    (10_430_000, "9.9 MB"),
    (31_457_280, "30 MB"),
    (500 * 1024 * 1024, "500 MB"),
    (5 * 1024**3 // 2, "2.5 GB"),
    (2000 * 1024**4, "2,000 TB"),
]


@pytest.mark.parametrize(("size", "words"), SIZES)
def test_a_size_is_written_in_one_format(size, words):
    assert file_size(size) == words


def test_every_template_has_the_filter():
    assert Template("{{ size|file_size }}").render(Context({"size": 338_944})) == "331 KB"
