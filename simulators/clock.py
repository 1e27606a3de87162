"""Virtual time for the simulated services.

Nothing in the simulators reads the wall clock: every timestamp comes from one
:class:`VirtualClock` that the harness advances, so a run replays exactly from its seed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

EPOCH_2025_09_01 = 1_756_684_800.0


class VirtualClock:
    """Seconds since the Unix epoch, moved only by :meth:`advance`."""

    def __init__(self, now: float = EPOCH_2025_09_01) -> None:
        self.now = now

    def advance(self, seconds: float) -> None:
        """Time never runs backwards: stamps and strict ``*_since`` filters rely on it."""
        if seconds < 0:
            raise ValueError(f"cannot advance the clock by {seconds} s")
        self.now += seconds


@lru_cache(maxsize=8192)
def iso(t: float) -> str:
    """Canvas's REST timestamp form: UTC, whole seconds, literal ``Z``. Cached: a page
    renders the same few stamps (creation times, a grading session) over and over."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=8192)
def iso_micro(t: float) -> str:
    """Badgr's ``createdAt`` form: UTC with microseconds and a literal ``Z`` (cached, as
    :func:`iso` is)."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
