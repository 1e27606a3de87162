"""When each course syncs next: the steady poll, anti-entropy, and capped, jittered backoff.

Every course has its own schedule, so a failing course delays only itself. Backoff grows
exponentially but is capped, and there is no "give up" state: a course that fails for a week
is still retried every ``backoff_cap`` seconds and its status says why. Jitter spreads
retries of many courses apart; it comes from a hash of (course, attempt) rather than a
random generator, so the engine stays deterministic and replayable.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """Timing knobs, in seconds of whatever clock the adapter feeds through ``Tick``."""

    poll_interval: float = 300.0
    full_resync_interval: float = 3600.0
    backoff_base: float = 30.0
    backoff_cap: float = 1800.0
    round_timeout: float = 900.0
    # Tries per idempotent request within a round before the round is given up.
    request_attempts: int = 3
    # graded_since is a strict ">" and clocks skew: re-read this much before the watermark.
    watermark_overlap: float = 600.0
    # An award whose outcome is unknown counts as absent only on a read that started this
    # long after the attempt: the longest Credentials replica lag plus the longest delay
    # with which a write the client gave up on may still be stored (README, "Duplicates").
    award_settle_window: float = 600.0
    # A throttled request waits what its Retry-After says, but never longer than this (and
    # never longer than a round may go unanswered): one absurd header must not park a course
    # for a year. Canvas's own throttle asks for seconds.
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"Policy.{name} must be positive, got {value!r}")
        if self.backoff_base > self.backoff_cap:
            raise ValueError("Policy.backoff_base must not exceed backoff_cap")
        if self.max_retry_after >= self.round_timeout:
            raise ValueError("Policy.max_retry_after must be shorter than round_timeout")

    def freshness_bound(self) -> float:
        """The longest a healthy course can go without completing a round: a full backoff
        wait, plus a poll, plus a round that runs out its timeout."""
        return self.backoff_cap + self.poll_interval + self.round_timeout


def jitter(course_id: int, attempt: int) -> float:
    """A stable fraction in [0, 1) for this course and attempt."""
    digest = hashlib.blake2b(f"{course_id}:{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def backoff_delay(policy: Policy, course_id: int, attempt: int) -> float:
    """Delay before retry number ``attempt`` (1-based): full jitter over an exponential
    window, never below half the window so a storm of failures still spaces out."""
    window = min(policy.backoff_cap, policy.backoff_base * float(2 ** min(attempt - 1, 32)))
    return window * (0.5 + 0.5 * jitter(course_id, attempt))
