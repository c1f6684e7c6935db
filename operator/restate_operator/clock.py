"""The operator's one time module: the timestamps it writes into status and how it reads them.

Kubernetes writes RFC 3339 in UTC with a `Z` (whole seconds in metadata and conditions); the
operator writes drain times to the millisecond (drain delays are counted from them).
"""

from __future__ import annotations

import datetime
from typing import Any


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def now() -> str:
    """Now to the second (conditions' lastTransitionTime, registeredAt)."""
    return utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(at: datetime.datetime | None = None) -> str:
    """Now (or `at`) to the millisecond."""
    return (at or utcnow()).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(value: Any) -> datetime.datetime | None:
    """An RFC 3339 timestamp (as Kubernetes or this module writes it), or a datetime; None for
    no value."""
    if not value:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def since(value: Any) -> float:
    """Seconds from the timestamp until now (0 for no value or one in the future)."""
    parsed = parse(value)
    if parsed is None:
        return 0.0
    return max(0.0, (utcnow() - parsed).total_seconds())


def later(value: Any, seconds: float) -> str | None:
    """The timestamp `seconds` after `value`, to the millisecond."""
    parsed = parse(value)
    return None if parsed is None else stamp(parsed + datetime.timedelta(seconds=seconds))
