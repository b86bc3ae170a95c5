"""How the operations page writes its figures: money, durations, shares."""

from django import template

from apps.ops.figures import usd as to_usd

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """Micro-dollars as "$1,234.56" ("-$3.00" below zero)."""
    if micros is None:
        return "unknown"
    amount = to_usd(micros)
    return f"-${-amount:,}" if amount < 0 else f"${amount:,}"


@register.filter
def duration(seconds: float | None) -> str:
    """Seconds in words a person scans quickly: "0.8 s", "42 s", "3 min 05 s", "2 h 10 min"."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


@register.filter
def percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"
