"""Framework-free request values and helpers shared by both simulated APIs.

The handlers take an :class:`ApiRequest` and return a :class:`~sync_core.wire.HttpResponse`,
so the in-memory transport and a FastAPI wrapper serve byte-for-byte the same behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from sync_core.wire import HttpResponse, header

Query = tuple[tuple[str, str], ...]

JSON_TYPE = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request; ``origin``, ``path`` (percent-decoded segments joined by ``/``) and
    ``query`` (ordered pairs, repeats kept) are parsed once from ``url``."""

    method: str
    url: str
    # Out of ``repr``: it carries the Authorization header, which no printout may show.
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    json: object | None = None
    origin: str = field(init=False)
    path: str = field(init=False)
    query: Query = field(init=False)
    segments: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # Asked several times per request (auth, rate-limit bucket, token user, faults), so
    # the headers are scanned for it once.
    _bearer: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        origin, path, query, segments = _parse_url(self.url)
        object.__setattr__(self, "origin", origin)
        object.__setattr__(self, "path", path)
        object.__setattr__(self, "query", query)
        object.__setattr__(self, "segments", segments)
        value = header(self.headers, "Authorization")
        bearer = None
        if value is not None and value.startswith("Bearer "):
            bearer = value[len("Bearer ") :].strip() or None
        object.__setattr__(self, "_bearer", bearer)

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def param(self, key: str) -> str | None:
        """A scalar parameter; Rails keeps the *last* of repeated values."""
        found = None
        for k, v in self.query:
            if k == key:
                found = v
        return found

    def params(self, key: str) -> list[str]:
        """Every value of a repeated (``key[]``-style) parameter, in request order."""
        return [v for k, v in self.query if k == key]

    def bearer(self) -> str | None:
        """The token from ``Authorization: Bearer``; only that exact prefix is recognised."""
        return self._bearer

    def url_with(self, replace: Mapping[str, str], drop: Sequence[str] = ()) -> str:
        """This request's absolute URL, rebuilt the way Rails links are: the original query
        minus ``replace`` and ``drop`` keys, sorted by key (repeats of array keys in order,
        the last value of scalar keys), then ``replace`` appended in its given order."""
        # Canvas appends page/per_page verbatim, so "page=bookmark:..." keeps its colon.
        if all(_VERBATIM.fullmatch(k) and _VERBATIM.fullmatch(v) for k, v in replace.items()):
            tail = "&".join(f"{k}={v}" for k, v in replace.items())  # what urlencode gives
        else:
            tail = urlencode(list(replace.items()), safe=":")
        return self.link_prefix(tuple(replace), drop) + tail

    def link_prefix(self, replaced: Sequence[str], drop: Sequence[str] = ()) -> str:
        """What :meth:`url_with` puts before the ``replace`` pairs (up to the ``?`` or
        ``&`` they follow): a page's links share it, so a caller that appends the pairs
        itself builds it once per request instead of once per link."""
        head = _rails_query(self.query, frozenset(replaced) | frozenset(drop))
        return f"{self.origin}{self.path}?{head}&" if head else f"{self.origin}{self.path}?"


_VERBATIM = re.compile(r"[A-Za-z0-9_.~:-]*")
"""Characters ``urlencode(..., safe=":")`` leaves as they are: page numbers, ``per_page``,
bookmarks and cursors (URL-safe base64) need no encoding, and skipping ``urlencode`` for
them halves the cost of a page's ``Link`` header."""


@lru_cache(maxsize=4096)
def _parse_url(url: str) -> tuple[str, str, Query, tuple[str, ...]]:
    """(origin, path, query pairs, decoded path segments) of a URL. Cached: a sync asks
    for the same URLs round after round (a student's module progress, a course's first
    page), and everything returned is immutable."""
    parts = urlsplit(url)
    query = tuple(parse_qsl(parts.query, keep_blank_values=True))
    segments = tuple(unquote(s) for s in parts.path.split("/") if s)
    return f"{parts.scheme}://{parts.netloc}", parts.path, query, segments


@lru_cache(maxsize=1024)
def _rails_query(query: Query, removed: frozenset[str]) -> str:
    """The query minus ``removed`` keys, sorted as Rails sorts it. Cached: a page's links
    (current, next, prev, first, last) differ only in the keys removed here, and encoding
    the rest once instead of five times is a tenth of a simulated semester's run time;
    the size covers a course's per-student queries, which recur every round."""
    scalars: dict[str, str] = {}
    arrays: dict[str, list[str]] = {}
    for key, value in query:
        if key in removed:
            continue
        if key.endswith("[]"):
            arrays.setdefault(key, []).append(value)
        else:
            scalars[key] = value
    pairs = [
        (k, v) for k in sorted(set(scalars) | set(arrays)) for v in _values(k, scalars, arrays)
    ]
    return urlencode(pairs)


def _values(key: str, scalars: Mapping[str, str], arrays: Mapping[str, list[str]]) -> list[str]:
    return arrays[key] if key in arrays else [scalars[key]]


def json_response(
    status: int, body: object, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """A JSON answer. ``body`` must be built for this response alone, of JSON's types only
    (dict with str keys, list, str, int, float, bool, None) and sharing no object with
    simulator state or a module constant: the in-memory transport hands it to the caller
    as it is, as a socket would hand over a fresh parse, without a serialise-and-parse
    copy per request (the HTTP apps serialise it once)."""
    return HttpResponse(status, {**JSON_TYPE, **(headers or {})}, body)


def link_header(links: Sequence[tuple[str, str]], separator: str) -> dict[str, str]:
    """``Link`` from (rel, url) pairs; Canvas joins with ``","``, Badgr with ``", "``."""
    if not links:
        return {}
    return {"Link": separator.join(f'<{url}>; rel="{rel}"' for rel, url in links)}


_LEADING_INT = re.compile(r"\s*([+-]?)0*(\d+)")
_HUGE = 10**18


@lru_cache(maxsize=256)  # ``per_page`` takes a handful of values, on every list request
def ruby_to_i(text: str) -> int:
    """Ruby's ``String#to_i``: the leading integer, or 0; Canvas parses ``per_page`` so.

    Absurdly long numbers saturate instead of tripping Python's digit limit; every
    caller clamps the result anyway.
    """
    match = _LEADING_INT.match(text)
    if match is None:
        return 0
    sign, digits = match.groups()
    value = int(digits) if len(digits) <= 18 else _HUGE
    return -value if sign == "-" else value


def parse_id(text: str) -> int | None:
    """A positive integer path id, or ``None`` (the route does not match: 404)."""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 0 < value < 2**63 else None
