from django import forms


class SwitchTeamForm(forms.Form):
    team = forms.UUIDField()
    next = forms.CharField(required=False, max_length=2000)
