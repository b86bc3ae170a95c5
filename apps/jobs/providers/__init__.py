"""Watermark-removal providers. The job pipeline asks `get_provider()` and nothing else."""

import os
import threading

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from apps.jobs.providers.base import RemovalProvider
from apps.jobs.providers.kie import KieProvider

# Keyed by process id: a worker forked from a process that already built a provider must not
# reuse its pooled connections, which belong to the parent.
_built: dict[int, KieProvider] = {}
_lock = threading.Lock()


def get_provider() -> RemovalProvider:
    """The provider configured in settings (Kie, or the Kie simulator), built once per process."""
    pid = os.getpid()
    with _lock:
        if pid not in _built:
            _built.clear()
            _built[pid] = KieProvider(
                api_key=settings.KIE_API_KEY,
                base_url=settings.KIE_BASE_URL,
                upload_method=settings.KIE_UPLOAD_METHOD,
                webhook_hmac_key=settings.KIE_WEBHOOK_HMAC_KEY,
                callback_max_age_seconds=settings.KIE_CALLBACK_MAX_AGE_SECONDS,
                timeout_seconds=settings.KIE_TIMEOUT_SECONDS,
                create_limit=settings.KIE_CREATE_LIMIT,
            )
        return _built[pid]


class NoProvider(Exception):
    """No enabled provider takes this kind of input: such jobs are refused, nothing held."""


# The SWC pool (apps/jobs/swc_pool.py) cleans uploaded files when servers are configured.
SWC = "swc"
SWC_INPUT_KINDS = frozenset({"file"})


def provider_for(kind: str) -> str:
    """The name of the enabled provider that takes `kind` ("link" or "file") inputs.

    Raises `NoProvider`, so a job nobody can clean is refused when it is submitted.
    """
    kie = get_provider()
    if kind in kie.input_kinds:
        return kie.name
    if kind in SWC_INPUT_KINDS and settings.SWC_SERVERS:
        return SWC
    noun = "uploaded files" if kind == "file" else "links"
    raise NoProvider(
        f"Cleaning {noun} is not available right now: no removal service that takes {noun} "
        "is set up. Nothing was charged."
    )


def accepts(kind: str) -> bool:
    """Whether some enabled provider takes `kind` inputs (the dashboard offers only those)."""
    try:
        provider_for(kind)
    except NoProvider:
        return False
    return True


def reset_provider() -> None:
    """Forgets the built provider, so the next `get_provider()` reads settings again."""
    with _lock:
        provider = _built.pop(os.getpid(), None)
        _built.clear()
    if provider is not None:
        provider.close()


@receiver(setting_changed)
def _forget_provider_when_kie_settings_change(*, setting: str, **kwargs: object) -> None:
    # Tests point KIE_BASE_URL at a simulator on an ephemeral port with `settings` overrides.
    if setting.startswith("KIE_"):
        reset_provider()
