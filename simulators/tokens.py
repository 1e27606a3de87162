"""Bearer tokens for both simulated services.

Tokens are the reason a long simulated run meets 401s at all: a Canvas OAuth token lives
one hour, a Credentials token a day, so an adapter that never refreshes fails late.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from simulators.clock import VirtualClock


class Service(Enum):
    CANVAS = "canvas"
    CREDENTIALS = "credentials"

    @property
    def ttl(self) -> float:
        """Canvas developer-key tokens last 1 h; Badgr access tokens 24 h."""
        return 3600.0 if self is Service.CANVAS else 86400.0


@dataclass
class Token:
    value: str
    service: Service
    expires_at: float


class TokenStore:
    """Issued tokens by value; values come from a counter so runs are reproducible."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._tokens: dict[str, Token] = {}
        self._issued = 0

    def issue(self, service: Service) -> str:
        self._issued += 1
        value = f"{service.value}-token-{self._issued:06d}"
        self._tokens[value] = Token(value, service, self._clock.now + service.ttl)
        return value

    def expire(self, value: str) -> None:
        token = self._tokens.get(value)
        if token is not None:
            token.expires_at = min(token.expires_at, self._clock.now)

    def validate(self, service: Service, value: str | None) -> bool:
        """True when ``value`` is a live token of ``service``.

        Badgr slides expiry: a token used with less than half its life left is renewed
        for a full day, so a busy Credentials token never dies of old age.
        """
        token = self._tokens.get(value) if value is not None else None
        now = self._clock.now
        if token is None or token.service is not service or now >= token.expires_at:
            return False
        if service is Service.CREDENTIALS and token.expires_at - now < service.ttl / 2:
            token.expires_at = now + service.ttl
        return True

    def refresh(self, value: str) -> str:
        """Trade ``value`` (live or expired) for a fresh token of the same service; the old
        one stops working, as with an OAuth refresh grant."""
        old = self._tokens.get(value)
        if old is None:
            raise KeyError("unknown token")
        self.expire(value)
        return self.issue(old.service)
