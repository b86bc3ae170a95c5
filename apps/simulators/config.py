"""Changes to a simulator's settings while it runs (`POST /__sim__/config`), for any simulator
whose settings are a dataclass of plain JSON-like values."""

import dataclasses
from typing import Any


def coerce_changes(
    config_type: type, changes: dict[str, Any], *, fixed: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Checks a `/__sim__/config` change against `config_type`'s fields: known settings (not
    one of `fixed`, such as the key it accepts), and JSON types that fit them."""
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    coerced: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in fields or name in fixed:
            raise ValueError(f"{name!r} is not a setting that can be changed")
        default = fields[name].default
        if isinstance(default, tuple):
            if not (isinstance(value, list) and len(value) == 2):
                raise ValueError(f"{name} must be a list of two numbers")
            coerced[name] = (float(value[0]), float(value[1]))
        elif isinstance(default, bool) or isinstance(value, bool):
            if type(value) is not type(default):
                raise ValueError(f"{name} must be {type(default).__name__}")
            coerced[name] = value
        elif isinstance(default, float) and isinstance(value, int | float):
            coerced[name] = float(value)
        elif type(value) is type(default):
            coerced[name] = value
        else:
            raise ValueError(f"{name} must be {type(default).__name__}")
    return coerced
