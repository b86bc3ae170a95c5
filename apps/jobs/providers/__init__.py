"""Watermark-removal providers, by name. The job pipeline asks `get_provider(name)` and
`provider_for(kind)`, and nothing else.

`REGISTRY` names every provider and how to build it from settings; each provider says which
`InputKind`s it accepts. The deployment's routing policy (`FILE_PROVIDERS`, `LINK_PROVIDERS`)
orders them per kind of input; `apps.jobs.routing` chooses among them at run time. A job
records the name of the provider that took it, so a job is always followed by the provider
that started its task.
"""

import os
import threading
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.jobs.models import InputKind
from apps.jobs.providers.base import RemovalProvider, StopsTasks
from apps.jobs.providers.kie import KieProvider
from apps.jobs.providers.metered import metered
from apps.jobs.providers.replicate import ReplicateProvider


class NoProvider(Exception):
    """No configured provider takes this kind of input (or has this name)."""


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
    )


def _swc() -> RemovalProvider:
    # Imported here: the pool's module uses this registry itself.
    from apps.jobs.swc_pool import SwcPool

    return SwcPool()


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
    )


# Every provider there is; which of them take which inputs, and in which order, is the policy.
REGISTRY: dict[str, Callable[[], RemovalProvider]] = {
    "kie": _kie,
    "swc": _swc,
    "replicate": _replicate,
}

# Keyed by process id: a worker forked from a process that already built a provider must not
# reuse its pooled connections, which belong to the parent.
_built: dict[tuple[int, str], RemovalProvider] = {}
_lock = threading.Lock()


def get_provider(name: str) -> RemovalProvider:
    """The provider of that name, built from settings once per process (its calls measured)."""
    if name not in REGISTRY:
        raise NoProvider(f"No removal provider is called {name!r}.")
    pid = os.getpid()
    with _lock:
        if any(built_pid != pid for built_pid, _ in _built):
            _built.clear()
        if (pid, name) not in _built:
            _built[pid, name] = metered(REGISTRY[name]())
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


def provider_for(kind: InputKind) -> RemovalProvider:
    """The preferred provider for this kind of input, as configured (whatever its health)."""
    for provider in configured_for(kind):
        return provider
    raise NoProvider(f"No removal provider takes {InputKind(kind).label.lower()}s.")


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


def stops_tasks(name: str) -> bool:
    """Whether the provider of that name can stop a task it already runs (see `StopsTasks`)."""
    return name in REGISTRY and isinstance(get_provider(name), StopsTasks)


def accepts(kind: InputKind) -> bool:
    """Whether some enabled provider takes `kind` inputs (the dashboard offers only those)."""
    try:
        provider_for(kind)
    except NoProvider:
        return False
    return True
