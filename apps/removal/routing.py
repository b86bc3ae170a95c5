"""Which provider takes a job: the deployment's routing policy, applied at run time.

The policy (`FILE_PROVIDERS`, `LINK_PROVIDERS`) orders the providers per kind of input. How each
one stands right now comes from what the app already knows, not from new state:

- **switched off** by staff (`ProviderSwitch`, flipped in the admin with a reason);
- **down**: an open `ProviderAlert` of any kind but the "no room right now" ones (the whole SWC
  pool not answering, a bad key, no credits at the provider…);
- **no room right now**: Kie's maintenance or pause (an open alert that a probe clears), or
  simply no free start this moment (`claim_starts`).

Submission only asks whether some provider for the kind can take new jobs at all (else the jobs
are refused with the reason, and nothing is held). The provider of each job is chosen when it
is sent (`split`, called by the dispatcher): the first enabled provider with room, so a file
waits for the SWC pool only while its expected wait stays within `SWC_OVERFLOW_WAIT_SECONDS`
and otherwise overflows to the next one; the jobs of a provider that is switched off or down
go to the next one as long as they have not started. A job a provider has accepted stays
with it to the end (`Job.provider`), and is charged once whoever cleans it.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache
from django.dispatch import Signal
from django.utils import timezone

from apps.refusals import Refused
from apps.removal import alerts
from apps.removal.base import InputKind, ProviderError, ProviderUnavailable, RemovalProvider
from apps.removal.models import ProviderAlert, ProviderSwitch
from apps.removal.registry import REGISTRY, NoProvider, configured_for, get_provider

if TYPE_CHECKING:
    from apps.accounts.models import User

logger = logging.getLogger("unmark.removal")

# Alert kinds that mean "no room right now": jobs wait for the provider (a probe clears them)
# rather than count it as down.
NO_ROOM_KINDS = frozenset({"maintenance", "paused"})

# Sent when staff switch a provider on or off: whoever dispatches work (the job pipeline)
# re-routes what waits at once rather than at its next round.
provider_switched = Signal()


@dataclass(frozen=True)
class Standing:
    """How one provider of the policy stands right now."""

    provider: RemovalProvider
    switched_off: bool
    alert: ProviderAlert | None

    @property
    def down(self) -> bool:
        return self.alert is not None and self.alert.kind not in NO_ROOM_KINDS

    @property
    def paused(self) -> bool:
        return self.alert is not None and self.alert.kind == "paused"

    @property
    def takes_new_jobs(self) -> bool:
        """Whether new jobs may be accepted for it (it may still have no room right now).

        Not while it is paused: a pause has no end in sight (Kie's has lasted since June
        2026), so a new job would only wait to be refunded. Those already in line wait."""
        return not self.switched_off and not self.down and not self.paused

    @property
    def sendable(self) -> bool:
        """Whether the dispatcher may send it anything now."""
        return not self.switched_off and self.alert is None

    @property
    def reason(self) -> str:
        """Why it takes nothing now, in plain words, to go mid-sentence ("" when it does)."""
        label = self.provider.label
        if label.startswith("Our "):
            label = "our " + label[4:]
        if self.switched_off:
            return f"{label} {_be(label)} switched off by our team for now"
        if self.alert is None:
            return ""
        return unavailable_reason(label, self.alert.kind)


def unavailable_reason(label: str, kind: str) -> str:
    """Why a provider takes no work, by the kind of its alert, in plain words to go
    mid-sentence: never the provider's own codes."""
    if kind == "maintenance":
        return f"{label} {_be(label)} under maintenance"
    if kind == "paused":
        return f"{label} {'have' if _plural(label) else 'has'} paused Sora watermark removal"
    if kind == "down":
        return f"{label} {_be(label)} not answering"
    return f"{label} {_be(label)} unavailable"


def _plural(label: str) -> bool:
    return label.endswith("s")  # "Our cleaning servers"


def _be(label: str) -> str:
    return "are" if _plural(label) else "is"


def standings(kind: InputKind) -> list[Standing]:
    """Every provider of the policy set up for this kind, in order, with how it stands."""
    providers = configured_for(kind)
    names = [provider.name for provider in providers]
    off = set(
        ProviderSwitch.objects.filter(provider__in=names, enabled=False).values_list(
            "provider", flat=True
        )
    )
    alerts: dict[str, ProviderAlert] = {}
    # A provider down for one reason and paused for another is down: that alert wins.
    for alert in ProviderAlert.objects.filter(provider__in=names, resolved_at__isnull=True):
        held = alerts.get(alert.provider)
        if held is None or (held.kind in NO_ROOM_KINDS and alert.kind not in NO_ROOM_KINDS):
            alerts[alert.provider] = alert
    return [
        Standing(provider, provider.name in off, alerts.get(provider.name))
        for provider in providers
    ]


def can_send(name: str) -> bool:
    """Whether the dispatcher may send this provider anything right now."""
    switched_off = ProviderSwitch.objects.filter(provider=name, enabled=False).exists()
    return (
        not switched_off
        and not ProviderAlert.objects.filter(provider=name, resolved_at__isnull=True).exists()
    )


# --- Submission ----------------------------------------------------------------------------------
def accepting(kind: InputKind) -> list[RemovalProvider]:
    """The providers new jobs of this kind may be accepted for. Raises `NoProvider` with the
    reason, in plain words, when there are none."""
    stands = standings(kind)
    taking = [stand.provider for stand in stands if stand.takes_new_jobs]
    if taking:
        return taking
    if paused := _last_checked_pause(stands):
        raise ProviderPaused(kind, last_checked=paused)
    what = InputKind(kind).label.lower() + "s"
    if not stands:
        raise NoProvider(f"No removal provider takes {what}.")
    logger.warning("input refused", extra={"kind": kind, "reasons": _reasons(stands)})
    raise NoProvider(_out_of_service(what))


# How a pause is told for each kind of input: what is refused, who paused, what to do.
_PAUSE_WORDS = {
    InputKind.LINK: ("Links", "our link provider", "Upload the video file instead."),
    InputKind.FILE: ("Uploaded files", "our file provider", "Please try again later."),
}


class ProviderPaused(Refused):
    """The providers of this kind of input have paused the service: new jobs are refused at
    submission (nothing held) rather than left to wait for an end nobody announced."""

    code, status, title = "provider-paused", 503, "Paused"

    def __init__(self, kind: InputKind, *, last_checked: datetime) -> None:
        what, who, instead = _PAUSE_WORDS[InputKind(kind)]
        at = timezone.localtime(last_checked).strftime("%H:%M")
        super().__init__(
            f"{what} cannot be cleaned right now: {who} has paused Sora watermark removal "
            f"(last checked {at}). {instead}",
            last_checked=last_checked.isoformat(),
        )


def _last_checked_pause(stands: Iterable[Standing]) -> datetime | None:
    """When a pause was last confirmed, if one is why nothing takes this kind now."""
    seen = [stand.alert.last_seen_at for stand in stands if stand.paused and stand.alert]
    return max(seen, default=None)


def provider_at_submission(kind: InputKind) -> RemovalProvider:
    """Whom a new job is put in line for: the first provider that can be sent to now, else the
    first that takes new jobs. Only a first guess: the dispatcher chooses when it sends."""
    taking = accepting(kind)
    stands = {stand.provider.name: stand for stand in standings(kind)}
    return next((p for p in taking if stands[p.name].sendable), taking[0])


def _out_of_service(what: str) -> str:
    """What a customer reads while nobody can clean `what`: what they can do, not which of
    our providers is out and why (that is for staff: the admin and the logs)."""
    return f"{what.capitalize()} cannot be cleaned right now; please try again in a little while."


def _reasons(stands: Iterable[Standing]) -> str:
    reasons = [stand.reason for stand in stands if stand.reason]
    if len(reasons) == 1:
        return reasons[0]
    return f"{', '.join(reasons[:-1])}, and {reasons[-1]}"


# --- Dispatch ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Share:
    """Of the queued jobs of one kind, in line order: the next `send` go to `provider` now
    (their starts claimed at `claimed_at`), and the `keep` after them wait in line for it."""

    provider: RemovalProvider
    send: int
    keep: int
    claimed_at: float


def split(kind: InputKind, waiting: int, *, in_hand: dict[str, int]) -> list[Share]:
    """Shares out `waiting` queued jobs of this kind among the providers that can be sent to,
    in policy order: each takes as many as it has starts for now (less those already handed
    out to it and not yet started, `in_hand`), and keeps in line as many more as may wait for
    it; the rest go on to the next one."""
    shares = []
    left = waiting
    for stand in standings(kind):
        if left <= 0:
            break
        if not stand.sendable:
            continue
        provider = stand.provider
        send, claimed_at = provider.claim_starts(left, in_hand=in_hand.get(provider.name, 0))
        keep = min(left - send, provider.may_wait(sent_now=send))
        shares.append(Share(provider, send, keep, claimed_at))
        left -= send + keep
    return shares


def first_choice(kind: InputKind) -> str | None:
    """The provider the next job of this kind in line goes to, if any can be sent to now."""
    return next((s.provider.name for s in standings(kind) if s.sendable), None)


# --- What people are told ------------------------------------------------------------------------
@dataclass(frozen=True)
class Outage:
    """A kind of input that cannot be processed right now, for the banner."""

    kind: InputKind
    headline: str
    advice: str


def outages(kinds: Iterable[InputKind] = tuple(InputKind)) -> list[Outage]:
    """The kinds of input nobody can process now (set up ones only), in plain words: refused
    when no provider takes new jobs, waiting when the only ones left have no room."""
    found = []
    minutes = settings.JOB_GIVE_UP_SECONDS // 60
    for kind in kinds:
        stands = standings(kind)
        if not stands or any(stand.sendable for stand in stands):
            continue
        what = InputKind(kind).label.lower() + "s"
        if not any(stand.takes_new_jobs for stand in stands):
            if paused := _last_checked_pause(stands):
                headline = ProviderPaused(kind, last_checked=paused).message
            else:
                headline = _out_of_service(what)
            found.append(
                Outage(
                    kind,
                    headline,
                    f"New {what} are refused until then, and nothing is charged for them. Any "
                    f"already waiting go out when it is back, or are refunded after {minutes} "
                    "minutes.",
                )
            )
            continue
        # It takes new jobs but cannot be sent any: an alert of the "no room right now" kind.
        waiting_for = next(stand for stand in stands if stand.takes_new_jobs)
        advice = waiting_for.alert.advice if waiting_for.alert else ""
        reason = waiting_for.reason
        found.append(Outage(kind, f"{reason[0].upper()}{reason[1:]}.", advice))
    return found


# --- Staff's switch ------------------------------------------------------------------------------
def switch(*, name: str, enabled: bool, reason: str, by: "User | None") -> bool:
    """Switches a provider off or back on, recording why and who; False if it already was.

    Its jobs that have not started go to the next provider at the dispatcher's next round (one
    is started now); the ones it is running are followed there to the end.
    """
    ProviderSwitch.objects.get_or_create(provider=name, defaults={"reason": ""})
    changed = ProviderSwitch.objects.filter(provider=name, enabled=not enabled).update(
        enabled=enabled, reason=reason[:300], changed_by=by, changed_at=timezone.now()
    )
    if changed:
        logger.warning(
            "provider switched", extra={"provider": name, "enabled": enabled, "reason": reason}
        )
        provider_switched.send(sender=ProviderSwitch, name=name, enabled=enabled)
    return bool(changed)


# --- Finding a provider back --------------------------------------------------------------------
def probe_down_machines() -> float | None:
    """Each provider set up for some input probes those of its own machines that are down and
    due a probe (an SWC server marked down for stalling), work or not; returns the seconds
    until the next probe is due anywhere, or None when no machine is down."""
    soonest: float | None = None
    names = dict.fromkeys(p.name for kind in InputKind for p in configured_for(kind))
    for name in names:
        try:
            due = get_provider(name).probe_machines()
        except ProviderError as exc:
            logger.warning("machine probe failed", extra={"provider": name, "error": str(exc)})
            continue
        if due is not None:
            soonest = due if soonest is None else min(soonest, due)
    return soonest


def probe_unavailable_providers() -> None:
    """Asks each unavailable provider, every PROVIDER_PROBE_SECONDS, whether it is back; clears
    its alerts when it is, so waiting jobs go out without anyone having to act."""
    for name in alerts.unavailable_providers():
        if name not in REGISTRY:
            continue  # a provider since taken out of the code: nothing to ask
        if not cache.add(f"removal:probe:{name}", True, timeout=settings.PROVIDER_PROBE_SECONDS):
            continue
        try:
            get_provider(name).probe()
        except ProviderUnavailable as exc:
            alerts.record(name, exc)
        except ProviderError as exc:
            logger.warning("provider probe failed", extra={"provider": name, "error": str(exc)})
        else:
            alerts.resolve(name)
            logger.info("provider back", extra={"provider": name})
