from collections.abc import Mapping
from datetime import date

from django import forms

from apps.ops.figures import LONGEST_RANGE, Period

DEFAULT_DAYS = 7


class PeriodForm(forms.Form):
    """The days the operations page covers (UTC, both included); the last week when not given."""

    first = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    last = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data: Mapping[str, str], *, today: date | None = None) -> None:
        default = Period.last_days(DEFAULT_DAYS, today=today)
        given = {name: data[name] for name in ("first", "last") if data.get(name)}
        super().__init__({"first": default.first, "last": default.last, **given}, label_suffix="")

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        first, last = cleaned.get("first"), cleaned.get("last")
        if not isinstance(first, date) or not isinstance(last, date):
            return cleaned
        if first > last:
            self.add_error("last", "The last day must be on or after the first day.")
        elif last - first >= LONGEST_RANGE:
            self.add_error("last", f"Choose at most {LONGEST_RANGE.days} days.")
        return cleaned

    @property
    def period(self) -> Period:
        """The days asked for; only once the form is valid."""
        return Period(self.cleaned_data["first"], self.cleaned_data["last"])
