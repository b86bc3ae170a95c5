from django import forms


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=80,
        label="Name",
        help_text="Where the key is used, so you know which to revoke: “Zapier”, “CI”.",
    )
    read_only = forms.BooleanField(
        required=False,
        label="Read only",
        help_text="Lists jobs and credits, creates and cancels nothing.",
    )
