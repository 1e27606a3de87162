"""credsync's production adapter: the sync engine over real HTTP.

:class:`HttpAdapter` performs engine commands against Canvas and Canvas Credentials (or the
simulators' HTTP fakes) with ``httpx``; :func:`run_sync` is the loop that feeds the engine
its clock and the answers, saving its state to a :class:`Store` (:class:`SqliteStore` by
default) after every step; :func:`load_links` reads which courses to sync. Everything
here is I/O; the decisions stay in :mod:`sync_core`.
"""

from adapter.http import DEFAULT_TIMEOUT, HttpAdapter, wire_response
from adapter.links import LinksError, links_to_json, load_links
from adapter.runner import (
    Executor,
    RoundEnded,
    apply_links,
    load_engine,
    run_sync,
)
from adapter.store import SqliteStore, Store
from adapter.summary import summary
from adapter.tokens import REFRESH_MARGIN, OAuthToken

__all__ = [
    "DEFAULT_TIMEOUT",
    "REFRESH_MARGIN",
    "Executor",
    "HttpAdapter",
    "LinksError",
    "OAuthToken",
    "RoundEnded",
    "SqliteStore",
    "Store",
    "apply_links",
    "links_to_json",
    "load_engine",
    "load_links",
    "run_sync",
    "summary",
    "wire_response",
]
