from django import forms

from apps.webhooks.models import EventType
from apps.webhooks.services import UrlRefused, vet_url


class EndpointForm(forms.Form):
    """Adds an endpoint or changes one: where to post, and which events."""

    url = forms.URLField(
        max_length=500,
        label="Endpoint URL",
        assume_scheme="https",
        help_text="Where we POST each message, signed the Standard Webhooks way.",
    )
    events = forms.MultipleChoiceField(
        choices=EventType.choices,
        widget=forms.CheckboxSelectMultiple,
        label="Events to send",
        error_messages={"required": "Choose at least one event."},
    )

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        try:
            vet_url(url)
        except UrlRefused as refused:
            raise forms.ValidationError(str(refused)) from None
        return url

    def clean_events(self) -> list[str]:
        chosen: list[str] = self.cleaned_data["events"]
        # Stored in the order of the list people chose from, whatever order the form sent.
        return [event for event in EventType.values if event in chosen]
