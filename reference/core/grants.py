"""Grant matching (spec §9.1): exact names, ``prefix*`` and ``*``; never regular expressions."""

from __future__ import annotations

from collections.abc import Iterable

from reference.core.errors import Forbidden
from reference.core.model import Action, Grant


def pattern_matches(pattern: str, channel: str) -> bool:
    """True when a grant pattern covers a channel name."""
    if pattern == "*":  # ACC-3
        return True
    if pattern.endswith("*"):  # ACC-2: a prefix, which also covers the bare prefix itself
        return channel.startswith(pattern[:-1])
    return pattern == channel  # ACC-1


def allows(grants: Iterable[Grant], channel: str, action: Action) -> bool:
    """True when some grant both matches the channel and lists the action (ACC-4)."""
    return any(action in g.actions and pattern_matches(g.channels, channel) for g in grants)


def require(grants: Iterable[Grant], channel: str, action: Action) -> None:
    """Raise ``Forbidden`` unless the grants allow the action on the channel.

    The message names only what was asked, never whether the channel exists (ACC-8).
    """
    if not allows(grants, channel, action):
        raise Forbidden(f"no {action.value} grant for channel {channel!r}")
