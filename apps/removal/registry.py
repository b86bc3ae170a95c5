"""Watermark-removal providers, by name: every provider there is, built from settings once per
process, and the deployment's policy of which take which inputs, in which order.

Each provider says which `InputKind`s it accepts; the routing policy (`FILE_PROVIDERS`,
`LINK_PROVIDERS`) orders them per kind of input, and `apps.removal.routing` chooses among them
at run time. A job records the name of the provider that took it, so it is always followed
by the provider that started its task.
"""

import os
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.refusals import Refused
from apps.removal.base import InputKind, RemovalProvider
from apps.removal.kie import KieProvider
from apps.removal.local.provider import LocalRemover
from apps.removal.replicate import ReplicateProvider
from apps.removal.swc.pool import SwcPool


class NoProvider(Refused):
    """No provider can take this kind of input now. Nothing was created or held."""

    code, status, title = "no-provider", 409, "No removal service"

    def __init__(self, reason: str) -> None:
        super().__init__(f"{reason} Nothing was charged.")


def _kie() -> RemovalProvider:
    return KieProvider(
        api_key=settings.KIE_API_KEY,
        base_url=settings.KIE_BASE_URL,
        upload_method=settings.KIE_UPLOAD_METHOD,
        webhook_hmac_key=settings.KIE_WEBHOOK_HMAC_KEY,
        callback_max_age_seconds=settings.KIE_CALLBACK_MAX_AGE_SECONDS,
        timeout_seconds=settings.KIE_TIMEOUT_SECONDS,
        create_limit=settings.KIE_CREATE_LIMIT,
        cost_micros=settings.KIE_COST_MICROS,
        simulated=settings.KIE_SIMULATOR,
    )


def _replicate() -> RemovalProvider:
    return ReplicateProvider(
        api_token=settings.REPLICATE_API_TOKEN,
        base_url=settings.REPLICATE_BASE_URL,
        model=settings.REPLICATE_MODEL,
        price_per_second=settings.REPLICATE_PRICE_PER_SECOND,
        webhook_secret=settings.REPLICATE_WEBHOOK_SECRET,
        input_url_seconds=settings.REPLICATE_INPUT_URL_SECONDS,
        timeout_seconds=settings.REPLICATE_TIMEOUT_SECONDS,
        create_limit=settings.REPLICATE_CREATE_LIMIT,
        simulated=settings.REPLICATE_SIMULATOR,
    )


# Every provider there is; which of them take which inputs, and in which order, is the policy.
REGISTRY: dict[str, Callable[[], RemovalProvider]] = {
    "kie": _kie,
    "swc": SwcPool,
    "local": LocalRemover,
    "replicate": _replicate,
}

# Keyed by process id: a worker forked from a process that already built a provider must not
# reuse its pooled connections, which belong to the parent.
_built: dict[tuple[int, str], RemovalProvider] = {}
_lock = threading.Lock()


def get_provider(name: str) -> RemovalProvider:
    """The provider of that name, built from settings once per process. A name that is no
    provider is a bug (names come from the policy, which is checked at start): KeyError."""
    factory = REGISTRY[name]
    pid = os.getpid()
    with _lock:
        if any(built_pid != pid for built_pid, _ in _built):
            _built.clear()
        if (pid, name) not in _built:
            _built[pid, name] = factory()
        return _built[pid, name]


def policy(kind: InputKind) -> list[str]:
    """The names of the providers that may take this kind of input, in order of preference."""
    return list(settings.FILE_PROVIDERS if kind == InputKind.FILE else settings.LINK_PROVIDERS)


def check_policy() -> None:
    """Refuses to start with a routing policy that names a provider there is not (a typo would
    otherwise leave a kind of input with nobody to take it, silently)."""
    for setting, names in (
        ("FILE_PROVIDERS", settings.FILE_PROVIDERS),
        ("LINK_PROVIDERS", settings.LINK_PROVIDERS),
    ):
        for name in names:
            if name not in REGISTRY:
                known = ", ".join(REGISTRY)
                raise ImproperlyConfigured(
                    f"{setting} names {name!r}, which is not a provider (known: {known})."
                )
        if len(set(names)) != len(names):
            raise ImproperlyConfigured(f"{setting} names a provider twice: {','.join(names)}.")


def configured_for(kind: InputKind) -> list[RemovalProvider]:
    """The providers of the policy for this kind that are set up to take it, in order."""
    return [provider for provider in map(get_provider, policy(kind)) if kind in provider.accepts]


def accepts(kind: InputKind) -> bool:
    """Whether some provider is set up to take `kind` inputs (the dashboard offers only those)."""
    return bool(configured_for(kind))


def reset_providers() -> None:
    """Forgets the built providers, so the next `get_provider()` reads settings again."""
    with _lock:
        built = list(_built.values())
        _built.clear()
    for provider in built:
        provider.close()


@receiver(setting_changed)
def _forget_providers_when_settings_change(**kwargs: object) -> None:
    # Tests point KIE_BASE_URL (and the like) at a simulator on an ephemeral port.
    reset_providers()
