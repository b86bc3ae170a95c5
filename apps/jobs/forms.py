import uuid
from typing import Any

from django import forms
from django.conf import settings

from apps.jobs.links import PasteResult, count_nonblank_lines, parse_pasted_links
from apps.jobs.models import JobState
from apps.jobs.uploads import too_many_files_message

MAX_PASTE_CHARACTERS = 100_000


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field: the no-JavaScript way to send a batch of videos."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": "video/*,.mp4,.mov"}))
        # An empty file is refused with the other files judged by content, by name.
        kwargs.setdefault("allow_empty_file", True)
        super().__init__(**kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, list | tuple) else [data] if data else []
        return [super(MultipleFileField, self).clean(file, initial) for file in files]


class UploadIdsField(forms.Field):
    """The ids of files already uploaded (one by one, with progress) for this submission."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[uuid.UUID]:
        try:
            return [uuid.UUID(str(item)) for item in value or []]
        except ValueError:
            raise forms.ValidationError("Some uploaded files were not recognised.") from None


class SubmitForm(forms.Form):
    """One submission: pasted links and video files, held and charged as one batch."""

    links = forms.CharField(
        label="Sora share links",
        required=False,
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
    videos = MultipleFileField(label="Video files", required=False)
    uploads = UploadIdsField(required=False)
    # Set by "Process again" after a notice that these videos were already cleaned.
    again = forms.BooleanField(required=False, widget=forms.HiddenInput)
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
        self.paste = PasteResult(links=[], errors=[])
        if not text.strip():
            return text
        lines = count_nonblank_lines(text)
        limit = settings.MAX_LINKS_PER_SUBMIT
        if lines > limit:
            raise forms.ValidationError(
                f"You pasted {lines:,} lines, but up to {limit} links can be sent at once. "
                "Please send them in smaller batches."
            )
        if len(text) > MAX_PASTE_CHARACTERS:
            raise forms.ValidationError("This paste is too long. Paste one link per line.")
        self.paste = parse_pasted_links(text)
        return text

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        files = len(data.get("videos") or []) + len(data.get("uploads") or [])
        if files > settings.UPLOAD_MAX_FILES:
            raise forms.ValidationError(too_many_files_message())
        paste = getattr(self, "paste", None)
        if not files and "links" in data and paste and not paste.links and not paste.errors:
            raise forms.ValidationError("Choose video files to upload, or paste Sora share links.")
        return data


class JobFilterForm(forms.Form):
    state = forms.ChoiceField(
        choices=[("", "Any status"), *JobState.choices], required=False, label="Status"
    )
    by = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Submitted by")

    def __init__(self, data: object, *, members: list[tuple[int, str]]) -> None:
        super().__init__(data)  # type: ignore[arg-type]
        self.fields["by"].choices = [("", "Anyone"), *members]  # type: ignore[attr-defined]
