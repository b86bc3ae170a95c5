"""One way to write a file's size, everywhere: "500 MB", "331 KB", "1.4 MB", "812 bytes".

Binary units (a KB is 1,024 bytes, as browsers and Django's `filesizeformat` count them),
whole numbers from 10 up and one decimal below, so a size reads the same on every page, in
the timeline and in refusals. `static/js/upload.js` (`formatSize`) writes the sizes of
staged files the same way; `tests/jobs/test_sizes.py` holds both to it.

Also a template filter, built into every template (`TEMPLATES` in settings):
`{{ job.original_size|file_size }}`.
"""

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()

UNITS = ["KB", "MB", "GB", "TB"]


def _rounded(amount: float) -> Decimal:
    """Halves up, as JavaScript's `toFixed` and `Math.round` do: a size divided by powers of
    two is exact in binary, so both sides round the same number the same way."""
    places = Decimal("0.1") if amount < 9.95 else Decimal(1)
    return Decimal(amount).quantize(places, rounding=ROUND_HALF_UP)


@register.filter
def file_size(size: int | None) -> str:
    """Nothing for an unknown size (a job whose file is not measured yet)."""
    if size is None:
        return ""
    if size < 1024:
        return f"{size:,} byte{'' if size == 1 else 's'}"
    amount = float(size)
    for unit in UNITS:
        amount /= 1024
        # Rounded as it will be shown, so 1,023.7 KB is written "1 MB", not "1024 KB".
        if _rounded(amount) < 1024 or unit == UNITS[-1]:
            break
    shown = _rounded(amount)
    text = f"{shown:,}" if shown == shown.to_integral_value() else str(shown)
    return f"{text.removesuffix('.0')} {unit}"
