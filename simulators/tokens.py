"""Bearer tokens, refresh tokens, OAuth clients and Credentials logins for both services.

Tokens are the reason a long simulated run meets 401s at all: a Canvas OAuth token lives
one hour, a Credentials token a day, so an adapter that never refreshes fails late. The
grants themselves (``/login/oauth2/token``, ``/o/token``) only exist over HTTP; this store
keeps the state they act on so that a grant and a Bearer check always agree.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
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
    """An access token. ``user_id`` is the Canvas user it acts as; ``None`` is a service
    (admin) token, which is what the sync holds in simulations and which sees everything.
    The value stays out of ``repr`` so a token printed in a failure or a log is no leak."""

    value: str = field(repr=False)
    service: Service
    expires_at: float
    user_id: int | None = None
    # Canvas scopes ("url:GET|/api/v1/courses/:course_id/enrollments") when the developer
    # key that issued it is scoped; None means every route.
    scopes: frozenset[str] | None = None
    # The Credentials issuers it may see (Badgr's ``rw:issuer:<id>`` scope, or the issuers
    # its login is staff of); None means every issuer.
    issuers: frozenset[str] | None = None


@dataclass
class RefreshToken:
    """A refresh token and the access token it last produced, which the next refresh kills
    (Canvas regenerates the token on the same row; Badgr revokes the old pair)."""

    value: str = field(repr=False)
    service: Service
    user_id: int | None
    access: str = field(repr=False)
    alive: bool = True
    issuers: frozenset[str] | None = None


class TokenStore:
    """Issued tokens by value; values come from a counter so runs are reproducible."""

    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock
        self._tokens: dict[str, Token] = {}
        self._refresh: dict[str, RefreshToken] = {}
        self._clients: dict[tuple[Service, str], str] = {}
        self._logins: dict[str, tuple[str, frozenset[str] | None]] = {}
        self._issued = 0

    def _next_value(self, service: Service, kind: str) -> str:
        self._issued += 1
        return f"{service.value}-{kind}-{self._issued:06d}"

    def issue(
        self,
        service: Service,
        user_id: int | None = None,
        ttl: float | None = None,
        scopes: frozenset[str] | None = None,
        issuers: frozenset[str] | None = None,
    ) -> str:
        """A new access token. ``ttl=None`` is the service's OAuth lifetime; a manually
        generated Canvas token may never expire, so ``ttl=float("inf")`` is allowed.
        ``scopes`` limits a Canvas token to those routes, as a scoped developer key does;
        ``issuers`` limits a Credentials token to those issuers, as ``rw:issuer:<id>`` does."""
        value = self._next_value(service, "token")
        lifetime = service.ttl if ttl is None else ttl
        expires_at = self._clock.now + lifetime
        self._tokens[value] = Token(value, service, expires_at, user_id, scopes, issuers)
        return value

    def issuers_of(self, value: str | None) -> frozenset[str] | None:
        """The issuers a Credentials token may see; ``None`` for every issuer."""
        token = self._tokens.get(value) if value is not None else None
        return None if token is None else token.issuers

    def secrets(self) -> frozenset[str]:
        """Every credential this store ever issued or was given: access and refresh tokens,
        client secrets and passwords, live or dead. What a leak check greps artifacts for."""
        passwords = {password for password, _ in self._logins.values()}
        return frozenset({*self._tokens, *self._refresh, *self._clients.values(), *passwords})

    def scopes_of(self, value: str | None) -> frozenset[str] | None:
        token = self._tokens.get(value) if value is not None else None
        return None if token is None else token.scopes

    def user_of(self, value: str | None) -> int | None:
        """The user a token acts as (``None`` for unknown and service tokens)."""
        token = self._tokens.get(value) if value is not None else None
        return None if token is None else token.user_id

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
        """Trade ``value`` (live or expired) for a fresh token of the same service and user;
        the old one stops working, as with an OAuth refresh grant."""
        old = self._tokens.get(value)
        if old is None:
            raise KeyError("unknown token")
        self.expire(value)
        return self.issue(old.service, old.user_id, scopes=old.scopes, issuers=old.issuers)

    # ------------------------------------------------------------------ OAuth grants

    def issue_pair(
        self,
        service: Service,
        user_id: int | None = None,
        issuers: frozenset[str] | None = None,
    ) -> tuple[str, str]:
        """(access, refresh) as an authorization-code or password grant hands them out;
        every token the refresh token later yields sees the same ``issuers``."""
        access = self.issue(service, user_id, issuers=issuers)
        refresh = self._next_value(service, "refresh")
        self._refresh[refresh] = RefreshToken(refresh, service, user_id, access, issuers=issuers)
        return access, refresh

    def grant_refresh(self, service: Service, value: str) -> tuple[str, str, int | None] | None:
        """Redeem a refresh token: (new access, refresh token to use next time, user), or
        ``None`` when it is unknown, dead or another service's. The previous access token
        dies. Canvas refresh tokens are reusable; Badgr rotates them, so the old one dies."""
        grant = self._refresh.get(value)
        if grant is None or not grant.alive or grant.service is not service:
            return None
        self.expire(grant.access)
        if service is Service.CANVAS:
            grant.access = self.issue(service, grant.user_id)
            return grant.access, value, grant.user_id
        grant.alive = False
        access, refresh = self.issue_pair(service, grant.user_id, grant.issuers)
        return access, refresh, grant.user_id

    def add_client(self, service: Service, client_id: str, secret: str) -> None:
        """Register an OAuth client (a Canvas developer key, a Badgr application)."""
        self._clients[(service, client_id)] = secret

    def client_secret(self, service: Service, client_id: str) -> str | None:
        return self._clients.get((service, client_id))

    def add_login(
        self, username: str, password: str, issuers: frozenset[str] | None = None
    ) -> None:
        """A Credentials account the password grant accepts. ``issuers`` are those it is
        staff of, which its tokens then see alone; ``None`` is a platform admin's account."""
        self._logins[username] = (password, issuers)

    def check_login(self, username: str, password: str) -> bool:
        return username in self._logins and self._logins[username][0] == password

    def login_issuers(self, username: str) -> frozenset[str] | None:
        """The issuers a known login is staff of (``None``: every issuer)."""
        return self._logins[username][1]


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(client id, secret) from ``Authorization: Basic``, the other way OAuth clients
    authenticate to a token endpoint; ``None`` when absent or undecodable."""
    if header is None or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[len("Basic ") :].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, colon, secret = decoded.partition(":")
    return (client_id, secret) if colon else None
