import uuid
from typing import Any

from django import forms
from django.conf import settings
from django.utils.translation import ngettext

from apps.jobs.links import PasteResult, count_nonblank_lines, parse_pasted_links
from apps.jobs.models import JobState

MAX_PASTE_CHARACTERS = 100_000


class SubmitLinksForm(forms.Form):
    links = forms.CharField(
        label="Sora share links",
        widget=forms.Textarea(
            attrs={
                "rows": 5,
                "placeholder": "https://sora.chatgpt.com/p/s_…\nhttps://sora.chatgpt.com/p/s_…",
                "spellcheck": "false",
                "autocomplete": "off",
            }
        ),
        strip=False,
    )
    # Names this rendering of the form, so that sending it twice (a double click without
    # JavaScript, a reload that re-posts) creates its jobs only once.
    submission = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4, required=False)
    owns_videos = forms.BooleanField(
        label="I own these videos or have the right to edit them",
        error_messages={"required": "Please confirm that you own these videos or may edit them."},
    )

    paste: PasteResult

    def __init__(self, *args: Any, ownership_confirmed: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Stated once per person (User.ownership_confirmed_at), not re-ticked on every paste.
        if ownership_confirmed:
            del self.fields["owns_videos"]

    def clean_links(self) -> str:
        text: str = self.cleaned_data["links"]
        lines = count_nonblank_lines(text)
        limit = settings.MAX_LINKS_PER_SUBMIT
        if lines > limit:
            raise forms.ValidationError(
                ngettext(
                    "You pasted %(lines)s lines, but only %(limit)d link can be sent at once. "
                    "Please send them one by one.",
                    "You pasted %(lines)s lines, but up to %(limit)d links can be sent at once. "
                    "Please send them in smaller batches.",
                    limit,
                )
                % {"lines": f"{lines:,}", "limit": limit}
            )
        if len(text) > MAX_PASTE_CHARACTERS:
            raise forms.ValidationError("This paste is too long. Paste one link per line.")
        self.paste = parse_pasted_links(text)
        if not self.paste.links and not self.paste.errors:
            raise forms.ValidationError("Paste at least one Sora share link.")
        return text


class JobFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[("", "Any status"), *JobState.choices], required=False, label="Status"
    )
    by = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Submitted by")

    def __init__(self, data: object, *, members: list[tuple[int, str]]) -> None:
        super().__init__(data)  # type: ignore[arg-type]
        self.fields["by"].choices = [("", "Anyone"), *members]  # type: ignore[attr-defined]
