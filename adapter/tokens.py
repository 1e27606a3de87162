"""Bearer tokens for the two services, and how each is renewed.

Canvas hands out one-hour OAuth tokens and renews them with a refresh grant at
``POST /login/oauth2/token`` (the refresh token itself never changes); Credentials (Badgr)
hands out day-long tokens at ``POST /o/token`` from a refresh token (which it rotates) or
from a username and password. A token is renewed :data:`REFRESH_MARGIN` seconds before the
expiry its grant announced, on the adapter's clock, so only an unexpected expiry ever
reaches the engine as a 401; after any 401 it is renewed too. A static token (a personal
access token) has no refresh credentials and is simply used until it stops working.

Tokens and secrets are kept out of ``repr`` and out of every error text, so nothing here can
leak into a log line or an engine event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx

REFRESH_MARGIN = 60.0
"""Seconds before the announced expiry at which a token is renewed, as OAuth clients do;
the same margin the in-memory transport uses, so both refresh on the same requests."""

CANVAS_TOKEN_PATH = "/login/oauth2/token"
CREDENTIALS_TOKEN_PATH = "/o/token"
BADGR_CLIENT_ID = "public"
BADGR_SCOPE = "rw:profile rw:issuer rw:backpack"
"""Self-hosted Badgr refuses a password grant unless the built-in ``public`` client and a
scope are named explicitly; these are the values its own clients send."""

Clock = Callable[[], float]


class OAuthToken:
    """One service's access token, its announced expiry and the grants that renew it.

    Grants are tried in order: the refresh token first, then the password grant, so a
    Badgr refresh token that has itself expired falls back to logging in again.
    """

    def __init__(
        self,
        access_token: str | None,
        *,
        expires_at: float | None = None,
        token_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        scope: str | None = None,
    ) -> None:
        self.access_token = access_token
        self.expires_at = expires_at
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._username = username
        self._password = password
        self._scope = scope
        self.last_error: str | None = None
        if access_token is None and not self.refreshable:
            raise ValueError("a token needs an access token or the credentials to obtain one")

    def __repr__(self) -> str:
        return f"OAuthToken(token_url={self.token_url!r}, expires_at={self.expires_at!r})"

    @classmethod
    def static(cls, access_token: str) -> OAuthToken:
        """A token that is never renewed (a Canvas personal access token, say)."""
        return cls(access_token)

    @classmethod
    def canvas(
        cls,
        base_url: str,
        access_token: str | None,
        *,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        expires_at: float | None = None,
    ) -> OAuthToken:
        """A Canvas developer-key token renewed by the OAuth2 refresh grant."""
        return cls(
            access_token,
            expires_at=expires_at,
            token_url=base_url.rstrip("/") + CANVAS_TOKEN_PATH,
            client_id=client_id,
            client_secret=client_secret,
            refresh_token=refresh_token,
        )

    @classmethod
    def credentials(
        cls,
        base_url: str,
        access_token: str | None = None,
        *,
        refresh_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
        expires_at: float | None = None,
    ) -> OAuthToken:
        """A Badgr token renewed from a refresh token, or by logging in with a password (as
        the ``public`` client unless ``client_id`` names another)."""
        logs_in = username is not None and password is not None
        return cls(
            access_token,
            expires_at=expires_at,
            token_url=base_url.rstrip("/") + CREDENTIALS_TOKEN_PATH,
            client_id=BADGR_CLIENT_ID if client_id is None and logs_in else client_id,
            refresh_token=refresh_token,
            username=username,
            password=password,
            scope=BADGR_SCOPE if logs_in else None,
        )

    @property
    def refreshable(self) -> bool:
        return self.token_url is not None and next(self._grants(), None) is not None

    def needs_refresh(self, now: float) -> bool:
        """Due for renewal: no access token yet, or within the margin of its expiry."""
        if not self.refreshable:
            return False
        if self.access_token is None:
            return True
        return self.expires_at is not None and now >= self.expires_at - REFRESH_MARGIN

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header; none at all when no token could be obtained, so
        the service answers 401 and the engine hears AUTH rather than the adapter raising."""
        return {} if self.access_token is None else {"Authorization": f"Bearer {self.access_token}"}

    async def refresh(
        self, client: httpx.AsyncClient, clock: Clock, timeout: httpx.Timeout
    ) -> bool:
        """Renew the access token; True on success. A failed renewal keeps the old token and
        notes why in :attr:`last_error` (never a secret): the request then goes out as it
        would have, and a 401 reaches the engine, which backs the course off."""
        if self.token_url is None:
            return False
        for form in self._grants():
            try:
                response = await client.post(self.token_url, data=form, timeout=timeout)
            except httpx.RequestError as exc:
                self.last_error = f"token refresh failed: {type(exc).__name__}"
                continue
            if self._accept(response, clock()):
                self.last_error = None
                return True
        return False

    def _grants(self) -> Iterator[dict[str, str]]:
        client = {} if self._client_id is None else {"client_id": self._client_id}
        if self._client_secret is not None:
            client["client_secret"] = self._client_secret
        if self._refresh_token is not None:
            yield {"grant_type": "refresh_token", **client, "refresh_token": self._refresh_token}
        if self._username is not None and self._password is not None:
            scope = {} if self._scope is None else {"scope": self._scope}
            login = {"username": self._username, "password": self._password}
            yield {"grant_type": "password", **client, **scope, **login}

    def _accept(self, response: httpx.Response, now: float) -> bool:
        """Take a grant's answer: a new access token, its lifetime from ``expires_in``, and
        a rotated refresh token when the service sent one (Badgr does; Canvas does not)."""
        if not response.is_success:
            self.last_error = f"token refresh failed: HTTP {response.status_code}"
            return False
        grant = _json_object(response)
        token = grant.get("access_token")
        if not isinstance(token, str) or not token:
            self.last_error = "token refresh failed: no access_token in the answer"
            return False
        self.access_token = token
        expires_in = grant.get("expires_in")
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            self.expires_at = now + float(expires_in)
        else:
            self.expires_at = None  # no announced lifetime: renew only after a 401
        rotated = grant.get("refresh_token")
        if isinstance(rotated, str) and rotated:
            self._refresh_token = rotated
        return True


def _json_object(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
