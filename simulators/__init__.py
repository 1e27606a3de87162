"""Deterministic simulators of Canvas LMS and Canvas Credentials, with fault injection.

Build a :class:`World` (or :meth:`World.small`), link courses, and drive the sync engine
through a :class:`MemoryTransport` whose :class:`FaultPlan` draws every fault from an
injected :class:`ChoiceSource`.

The names below load on first use (PEP 562): credsync's pytest plugin lives in this
package and is imported by every pytest run of anyone who installs credsync, which must not
pay for Faker, Hypothesis and the fakes unless a test uses them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulators.api import ApiRequest
    from simulators.canvas.api import CanvasApi
    from simulators.canvas.model import Canvas
    from simulators.clock import VirtualClock, iso, iso_micro
    from simulators.credentials.api import CredentialsApi
    from simulators.credentials.model import Credentials
    from simulators.faults import (
        ChoiceSource,
        FaultKind,
        FaultPlan,
        FaultRates,
        HypothesisChoices,
        SeededChoices,
    )
    from simulators.services import Dropped, Services
    from simulators.tokens import Service, TokenStore
    from simulators.transport import MemoryTransport
    from simulators.world import Link, World

_HOME = {
    "ApiRequest": "api",
    "Canvas": "canvas.model",
    "CanvasApi": "canvas.api",
    "VirtualClock": "clock",
    "iso": "clock",
    "iso_micro": "clock",
    "Credentials": "credentials.model",
    "CredentialsApi": "credentials.api",
    "ChoiceSource": "faults",
    "FaultKind": "faults",
    "FaultPlan": "faults",
    "FaultRates": "faults",
    "HypothesisChoices": "faults",
    "SeededChoices": "faults",
    "Dropped": "services",
    "Services": "services",
    "Service": "tokens",
    "TokenStore": "tokens",
    "MemoryTransport": "transport",
    "Link": "world",
    "World": "world",
}


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'simulators' has no attribute {name!r}")
    return getattr(importlib.import_module(f"simulators.{_HOME[name]}"), name)


__all__ = [
    "ApiRequest",
    "Canvas",
    "CanvasApi",
    "ChoiceSource",
    "Credentials",
    "CredentialsApi",
    "Dropped",
    "FaultKind",
    "FaultPlan",
    "FaultRates",
    "HypothesisChoices",
    "Link",
    "MemoryTransport",
    "SeededChoices",
    "Service",
    "Services",
    "TokenStore",
    "VirtualClock",
    "World",
    "iso",
    "iso_micro",
]
