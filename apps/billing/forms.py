import uuid
from decimal import Decimal

from django import forms
from django.conf import settings


class CheckoutForm(forms.Form):
    """Names a pack, never a price: the price is computed on the server from the pack."""

    pack = forms.TypedChoiceField(
        coerce=int,
        choices=[],
        error_messages={
            "required": "Choose one of the credit packs.",
            "invalid_choice": "Choose one of the credit packs.",
        },
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["pack"].choices = [  # type: ignore[attr-defined]
            (credits, f"{credits:,} credits") for credits in settings.CREDIT_PACKS
        ]


class StaffCreditForm(forms.Form):
    """A staff grant (adds credits) or adjustment (either way), always with a reason."""

    GRANT = "grant"
    ADJUST = "adjust"

    action = forms.ChoiceField(
        choices=[(GRANT, "Grant free credits"), (ADJUST, "Adjust the balance (+ or -)")],
        widget=forms.RadioSelect,
        initial=GRANT,
    )
    credits = forms.IntegerField(
        help_text="A grant must be positive; an adjustment may be negative.",
        min_value=-10_000_000,
        max_value=10_000_000,
    )
    reason = forms.CharField(
        max_length=300, help_text="Recorded on the ledger entry and shown to the team."
    )
    # One id per rendered form: submitting the same form twice records one entry.
    submission = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        credits = cleaned.get("credits")
        if credits == 0:
            self.add_error("credits", "Move at least one credit.")
        elif cleaned.get("action") == self.GRANT and isinstance(credits, int) and credits < 0:
            self.add_error("credits", "A grant adds credits; use an adjustment to remove them.")
        return cleaned


class PaymentReceivedForm(forms.Form):
    """A payment received outside Stripe: the dollars that arrived and the bank's reference.
    Dollars, because that is what staff see on the statement; the credits follow at the list
    price."""

    amount = forms.DecimalField(
        label="Amount received, in US dollars",
        max_digits=10,
        decimal_places=2,
        min_value=Decimal("0.01"),
        help_text=f"Credits are added at the list price: {1 / settings.USD_PER_CREDIT:,.0f} "
        "credits a dollar, rounded down.",
    )
    reference = forms.CharField(
        max_length=100,
        help_text="The bank transfer's or invoice's reference. A payment is recorded once per "
        "reference: entering it again changes nothing.",
    )

    def clean_reference(self) -> str:
        reference: str = self.cleaned_data["reference"].strip()
        if not reference:
            raise forms.ValidationError("Enter the payment's reference.")
        return reference
