"""Typed access to the environment for settings.

Every helper fails loudly on a value it cannot parse: a typo in production should stop the
process at start-up, not surface as odd behaviour later. Secrets may also be given as files
(`NAME_FILE=/run/secrets/name`), the way Docker and Kubernetes mount them.
"""

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_required(name: str) -> str:
    value = env_str(name)
    if not value:
        raise ImproperlyConfigured(f"Set {name} (or {name}_FILE) in the environment.")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = env_str(name)
    if name not in os.environ and f"{name}_FILE" not in os.environ:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no).")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env_str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = env_str(name)
    if not raw:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = env_str(name, default) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}.")
    return value


def env_micros(name: str, default: str) -> int:
    """A price in dollars (`0.79`), as whole millionths of a dollar: money is never a float.

    A price finer than a millionth of a dollar cannot be represented and is refused.
    """
    raw = env_str(name) or default
    try:
        dollars = Decimal(raw)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a price in dollars.") from None
    micros = dollars * 1_000_000
    if not dollars.is_finite() or dollars < 0 or micros != micros.to_integral_value():
        raise ImproperlyConfigured(
            f"{name}={raw!r} must be a price of at least 0, to a millionth of a dollar at most."
        )
    return int(micros)
